#include "src/memory/state_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>

#include "octopage/error.h"

namespace octopage::memory {
namespace {

std::string errno_text(int error) { return std::strerror(error); }

}  // namespace

void check_state_directory(const std::string& dir) {
  std::error_code ec;
  const bool exists = std::filesystem::exists(dir, ec);
  OCTOPAGE_CHECK(std::filesystem::is_directory(dir, ec), "expected offload_dir to be an existing directory, got '",
                 dir, "': ", exists ? "not a directory" : "no such directory");
  // Create a file rather than ask access(): root passes access() on read-only mounts.
  const std::string probe = (std::filesystem::path(dir) / ".octopage-write-test-").string() + std::to_string(::getpid());
  const int fd = ::open(probe.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  const int error = errno;
  if (fd >= 0) {
    ::close(fd);
    ::unlink(probe.c_str());
  }
  OCTOPAGE_CHECK(fd >= 0, "expected offload_dir '", dir, "' to be writable, got: ", errno_text(error));
}

StateDirectory::StateDirectory(std::string user_dir, bool keep)
    : user_dir_(std::move(user_dir)), keep_(keep) {
  if (!user_dir_.empty()) path_ = user_dir_;
}

StateDirectory::~StateDirectory() {
  if (temporary_ && !keep_) {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);  // only when empty: files are removed first
  }
}

const std::filesystem::path& StateDirectory::path() {
  if (path_.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/octopage-XXXXXX";
    OCTOPAGE_CHECK_RUNTIME(::mkdtemp(pattern.data()) != nullptr,
                           "could not create a temporary directory for optimizer state ('",
                           pattern, "'): ", errno_text(errno), "; set offload_dir");
    path_ = pattern;
    temporary_ = true;
  }
  return path_;
}

StateFile::StateFile(StateDirectory& dir, const char* kind, bool direct) : keep_(dir.keep()) {
  static std::atomic<int> counter{0};
  path_ = (dir.path() / ("octopage-" + std::to_string(::getpid()) + "-" +
                         std::to_string(counter.fetch_add(1)) + "-" + kind + ".state"))
              .string();
  const int flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC;
  if (direct) {
    fd_ = ::open(path_.c_str(), flags | O_DIRECT, 0600);
    if (fd_ < 0 && errno == EINVAL) direct = false;  // the file system has no direct I/O
  }
  if (fd_ < 0) fd_ = ::open(path_.c_str(), flags, 0600);
  OCTOPAGE_CHECK_RUNTIME(fd_ >= 0, "could not create the state file '", path_, "': ", errno_text(errno));
  direct_ = direct;
}

StateFile::~StateFile() {
  ::close(fd_);
  if (!keep_) ::unlink(path_.c_str());
}

std::uint64_t StateFile::reserve(std::uint64_t bytes) {
  const std::uint64_t offset = size_;
  if (bytes == 0) return offset;
  const int error = ::posix_fallocate(fd_, static_cast<off_t>(offset), static_cast<off_t>(bytes));
  if (error != 0) {
    (void)::ftruncate(fd_, static_cast<off_t>(offset));  // give back what was taken
    detail::throw_error(ErrorKind::kRuntime, "could not reserve ", bytes, " bytes for optimizer state in '",
                        path_, "': ", errno_text(error),
                        error == ENOSPC ? " (the offload directory lacks space)" : "");
  }
  size_ = offset + bytes;
  return offset;
}

void StateFile::shrink_to(std::uint64_t bytes) {
  if (bytes >= size_) return;
  if (::ftruncate(fd_, static_cast<off_t>(bytes)) == 0) size_ = bytes;
}

}  // namespace octopage::memory
