// The lower tier on the CPU: a directory of state files and the files themselves. Space
// is reserved (fallocate) when state is created, so a full disk is an error then, not
// a failure mid-step. Not the I/O itself: see io_queue.h and mapped_region.h.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace octopage::memory {

// File offsets, lengths and buffers of direct I/O are multiples of this.
inline constexpr std::uint64_t kFileAlignment = 4096;

constexpr std::uint64_t align_up(std::uint64_t bytes, std::uint64_t alignment) {
  return (bytes + alignment - 1) / alignment * alignment;
}

// Throws Error(kInvalidArgument) unless `dir` is an existing, writable directory.
void check_state_directory(const std::string& dir);

// Where an optimizer's state files go: the user's directory, or a temporary one that is
// created on first use and removed (when empty) with this object unless kept.
class StateDirectory {
 public:
  StateDirectory(std::string user_dir, bool keep);
  ~StateDirectory();
  StateDirectory(const StateDirectory&) = delete;
  StateDirectory& operator=(const StateDirectory&) = delete;

  // Creates the temporary directory on the first call; throws Error(kRuntime) when it
  // cannot.
  const std::filesystem::path& path();
  bool keep() const { return keep_; }

 private:
  std::string user_dir_;
  bool keep_;
  std::filesystem::path path_;
  bool temporary_ = false;
};

// One state file, grown by reserve(). Removed when destroyed unless the directory keeps
// its files.
class StateFile {
 public:
  // `kind` names the file ("paged", "offload"). direct: O_DIRECT where the file system
  // allows it (direct() says whether it did).
  StateFile(StateDirectory& dir, const char* kind, bool direct);
  ~StateFile();
  StateFile(const StateFile&) = delete;
  StateFile& operator=(const StateFile&) = delete;

  // Reserves `bytes` (a multiple of kFileAlignment) at the end of the file and returns
  // its offset. Throws Error(kRuntime) naming the file and the reason (no space, file
  // size limit) and leaves the file as it was.
  std::uint64_t reserve(std::uint64_t bytes);

  // Gives back the space past `bytes` (undoes reservations that are no longer wanted).
  void shrink_to(std::uint64_t bytes);

  int fd() const { return fd_; }
  bool direct() const { return direct_; }
  const std::string& path() const { return path_; }
  std::uint64_t size() const { return size_; }

 private:
  std::string path_;
  int fd_ = -1;
  bool direct_ = false;
  bool keep_ = false;
  std::uint64_t size_ = 0;
};

}  // namespace octopage::memory
