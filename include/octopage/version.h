// octopage's version.
#pragma once

#define OCTOPAGE_VERSION_MAJOR 0
#define OCTOPAGE_VERSION_MINOR 1
#define OCTOPAGE_VERSION_PATCH 0
#define OCTOPAGE_VERSION_STRING "0.1.0"
