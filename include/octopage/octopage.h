// octopage's public C++ API in one include.
#pragma once

#include "octopage/codes.h"
#include "octopage/cuda.h"
#include "octopage/error.h"
#include "octopage/memory_report.h"
#include "octopage/optimizer.h"
#include "octopage/options.h"
#include "octopage/rules.h"
#include "octopage/tensor.h"
#include "octopage/threads.h"
#include "octopage/version.h"
