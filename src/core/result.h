// Error values and Result<T>: how bad input travels through lora-verify without exceptions.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace lv {

// Exit codes of the CLI (sysexits-style). Every error value carries one of them.
enum class ErrorCode : int {
  kOk = 0,
  kChecksFailed = 1,   // ran fine, but a verification or check failed
  kUsage = 64,         // bad command line
  kBadInput = 65,      // input data is malformed or unsupported
  kCannotOpen = 66,    // input file missing or unreadable
  kInternal = 70,      // a broken internal invariant (a bug in lora-verify)
  kCannotCreate = 73,  // output cannot be created
  kIo = 74,            // read or write failed midway
};

// One error: a code plus a lower-case message that names the file, tensor and numbers.
struct Error {
  ErrorCode code = ErrorCode::kBadInput;
  std::string message;
};

inline Error make_error(ErrorCode code, std::string message) { return Error{code, std::move(message)}; }

// A broken invariant. In fuzz builds (LV_FUZZING) it aborts so the fuzzer reports it as a
// crash; elsewhere it becomes an internal error value that the CLI maps to exit 70.
inline Error internal_error(std::string message) {
#ifdef LV_FUZZING
  std::fprintf(stderr, "internal error: %s\n", message.c_str());
  std::abort();
#endif
  return Error{ErrorCode::kInternal, std::move(message)};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT(implicit)
  Result(Error error) : v_(std::move(error)) {}      // NOLINT(implicit)
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }
  const Error& error() const { return std::get<1>(v_); }
  Error&& take_error() { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(implicit)
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }
  Error&& take_error() { return std::move(error_); }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace lv

#define LV_TRY_ASSIGN(var, expr)                     \
  auto var##_result__ = (expr);                      \
  if (!var##_result__.ok()) return var##_result__.take_error(); \
  auto var = std::move(var##_result__).value()

#define LV_TRY(expr)                                  \
  do {                                                \
    auto lv_status__ = (expr);                        \
    if (!lv_status__.ok()) return lv_status__.take_error(); \
  } while (0)
