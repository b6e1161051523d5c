// Status: the error value that crosses layer boundaries (no exceptions across modules).
//
// A Status is either ok() or carries a Code and a human-readable message. The api layer maps
// codes to HTTP statuses; the store and core layers never know about HTTP.
#pragma once

#include <string>
#include <utility>

namespace ds {

class Status {
 public:
  enum class Code {
    kOk = 0,
    kNotFound,      // the named thing does not exist
    kInvalid,       // the caller's input is malformed
    kConflict,      // well-formed but contradicts current state
    kGone,          // existed, is deleted/expired, still blocks the name
    kIoError,       // the disk or the network failed; nothing was acknowledged
    kNoSpace,       // the disk is full
    kCorruption,    // stored data failed its checksum
    kUnavailable,   // temporarily unable (shutting down, dependency down)
    kTooLarge,      // a limit was exceeded
    kForbidden,     // fenced / not allowed
  };

  Status() = default;
  static Status ok() { return Status(); }
  static Status not_found(std::string m) { return Status(Code::kNotFound, std::move(m)); }
  static Status invalid(std::string m) { return Status(Code::kInvalid, std::move(m)); }
  static Status conflict(std::string m) { return Status(Code::kConflict, std::move(m)); }
  static Status gone(std::string m) { return Status(Code::kGone, std::move(m)); }
  static Status io_error(std::string m) { return Status(Code::kIoError, std::move(m)); }
  static Status no_space(std::string m) { return Status(Code::kNoSpace, std::move(m)); }
  static Status corruption(std::string m) { return Status(Code::kCorruption, std::move(m)); }
  static Status unavailable(std::string m) { return Status(Code::kUnavailable, std::move(m)); }
  static Status too_large(std::string m) { return Status(Code::kTooLarge, std::move(m)); }
  static Status forbidden(std::string m) { return Status(Code::kForbidden, std::move(m)); }

  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Status(Code c, std::string m) : code_(c), message_(std::move(m)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

}  // namespace ds
