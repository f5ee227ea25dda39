// Result<T>: a value or an Error a user can act on; the data path returns these, never throws.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace sb {

// Where an error came from; the CLI maps kConfig/kInput/kStore at start-up to exit code 2.
enum class ErrDomain { kUv, kAres, kSsl, kSmtp, kStore, kConfig, kInput, kSys };

const char* domain_name(ErrDomain d);

struct Error {
  ErrDomain domain;
  std::string message;

  std::string describe() const { return std::string(domain_name(domain)) + ": " + message; }
};

inline Error make_error(ErrDomain d, std::string msg) { return Error{d, std::move(msg)}; }

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T v) : v_(std::move(v)) {}      // NOLINT(google-explicit-constructor)
  Result(Error e) : v_(std::move(e)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error e) : err_(std::move(e)), ok_(false) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return err_;
  }

 private:
  Error err_{ErrDomain::kSys, {}};
  bool ok_ = true;
};

using Status = Result<void>;

inline const char* domain_name(ErrDomain d) {
  switch (d) {
    case ErrDomain::kUv: return "network";
    case ErrDomain::kAres: return "dns";
    case ErrDomain::kSsl: return "tls";
    case ErrDomain::kSmtp: return "smtp";
    case ErrDomain::kStore: return "task store";
    case ErrDomain::kConfig: return "config";
    case ErrDomain::kInput: return "input";
    case ErrDomain::kSys: return "system";
  }
  return "error";
}

}  // namespace sb
