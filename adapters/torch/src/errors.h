// The core's octopage::Error as c10's errors, for the LibTorch adapter's sources: a bad
// argument becomes c10::ValueError, any other failure c10::Error, with the core's
// message. Not the checks themselves: those stay where the problem is found.
#pragma once

#include <c10/util/Exception.h>

#include "octopage/error.h"

namespace octopage::torch {

[[noreturn]] inline void throw_as_c10(const Error& e) {
  if (e.kind() == ErrorKind::kInvalidArgument) C10_THROW_ERROR(ValueError, e.what());
  C10_THROW_ERROR(Error, e.what());
}

// f(), with the core's octopage::Error thrown again as the c10 error of its kind.
template <class F>
auto translated(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    throw_as_c10(e);
  }
}

}  // namespace octopage::torch
