// octopage::Error, the one exception type the library throws, and the checks that
// throw it. Kernels never throw; only the API layer checks its inputs and throws.
// An Error says what was expected and what was found.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace octopage {

// Which Python exception an Error maps to: a bad argument (ValueError) or a failure
// while doing valid work (RuntimeError).
enum class ErrorKind { kInvalidArgument, kRuntime };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message)
      : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

namespace detail {

template <class... Parts>
[[noreturn]] void throw_error(ErrorKind kind, Parts&&... parts) {
  std::ostringstream message;
  (message << ... << std::forward<Parts>(parts));
  throw Error(kind, message.str());
}

}  // namespace detail
}  // namespace octopage

// OCTOPAGE_CHECK(cond, "expected lr >= 0, got ", lr): throws an ErrorKind::kInvalidArgument
// Error whose message is the concatenation of the parts when cond is false.
#define OCTOPAGE_CHECK(cond, ...)                                                   \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      ::octopage::detail::throw_error(::octopage::ErrorKind::kInvalidArgument,      \
                                      __VA_ARGS__);                                 \
    }                                                                               \
  } while (false)

// As OCTOPAGE_CHECK, for failures of valid work (out of memory, I/O): kRuntime.
#define OCTOPAGE_CHECK_RUNTIME(cond, ...)                                               \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      ::octopage::detail::throw_error(::octopage::ErrorKind::kRuntime, __VA_ARGS__); \
    }                                                                               \
  } while (false)
