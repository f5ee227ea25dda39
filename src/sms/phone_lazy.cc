// libphonenumber, opened on first use (base/lazy_lib.h): only SMS numbers are normalised with
// it, and with protobuf, ICU and Abseil it was a fifth of every start's symbol lookups.
// A C++ library: each member function phone.cc calls is defined here under its own name and
// forwards to the library's by its mangled name (the Itanium C++ ABI: `this` is the first
// argument); the constructor and destructor, which cannot be forwarded from a C++
// definition, are plain functions given the library's symbol names.
#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

#include <string>

#include "base/lazy_lib.h"

namespace {

// libphonenumber8 (Debian 12): the soname names the ABI these mangled names belong to.
constinit sb::LazyLib phone("libphonenumber.so.8");

template <typename F>
F real(const char* mangled) {
  return sb::lazy_function<F>(phone, mangled);
}

}  // namespace

namespace i18n::phonenumbers {

PhoneNumberUtil* PhoneNumberUtil::GetInstance() {
  static const auto f =
      real<PhoneNumberUtil* (*)()>("_ZN4i18n12phonenumbers15PhoneNumberUtil11GetInstanceEv");
  return f();
}

bool PhoneNumberUtil::IsValidNumber(const PhoneNumber& number) const {
  static const auto f = real<bool (*)(const PhoneNumberUtil*, const PhoneNumber&)>(
      "_ZNK4i18n12phonenumbers15PhoneNumberUtil13IsValidNumberERKNS0_11PhoneNumberE");
  return f(this, number);
}

int PhoneNumberUtil::GetCountryCodeForRegion(const std::string& region_code) const {
  static const auto f = real<int (*)(const PhoneNumberUtil*, const std::string&)>(
      "_ZNK4i18n12phonenumbers15PhoneNumberUtil23GetCountryCodeForRegionERKNSt7__cxx1112basic_"
      "stringIcSt11char_traitsIcESaIcEEE");
  return f(this, region_code);
}

PhoneNumberUtil::ValidationResult PhoneNumberUtil::IsPossibleNumberWithReason(
    const PhoneNumber& number) const {
  static const auto f = real<ValidationResult (*)(const PhoneNumberUtil*, const PhoneNumber&)>(
      "_ZNK4i18n12phonenumbers15PhoneNumberUtil26IsPossibleNumberWithReasonERKNS0_11PhoneNumberE");
  return f(this, number);
}

void PhoneNumberUtil::GetRegionCodeForCountryCode(int country_code,
                                                  std::string* region_code) const {
  static const auto f = real<void (*)(const PhoneNumberUtil*, int, std::string*)>(
      "_ZNK4i18n12phonenumbers15PhoneNumberUtil27GetRegionCodeForCountryCodeEiPNSt7__cxx1112basic_"
      "stringIcSt11char_traitsIcESaIcEEE");
  f(this, country_code, region_code);
}

PhoneNumberUtil::ErrorType PhoneNumberUtil::Parse(const std::string& number_to_parse,
                                                  const std::string& default_region,
                                                  PhoneNumber* number) const {
  static const auto f = real<ErrorType (*)(const PhoneNumberUtil*, const std::string&,
                                           const std::string&, PhoneNumber*)>(
      "_ZNK4i18n12phonenumbers15PhoneNumberUtil5ParseERKNSt7__cxx1112basic_stringIcSt11char_"
      "traitsIcESaIcEEES9_PNS0_11PhoneNumberE");
  return f(this, number_to_parse, default_region, number);
}

void PhoneNumberUtil::Format(const PhoneNumber& number, PhoneNumberFormat number_format,
                             std::string* formatted_number) const {
  static const auto f =
      real<void (*)(const PhoneNumberUtil*, const PhoneNumber&, PhoneNumberFormat, std::string*)>(
          "_ZNK4i18n12phonenumbers15PhoneNumberUtil6FormatERKNS0_11PhoneNumberENS1_"
          "17PhoneNumberFormatEPNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE");
  f(this, number, number_format, formatted_number);
}

}  // namespace i18n::phonenumbers

// PhoneNumber::PhoneNumber(google::protobuf::Arena*, bool) and PhoneNumber::~PhoneNumber():
// the complete-object constructor and destructor (C1, D1) phone.cc's `PhoneNumber pn;` calls.
#define SB_PN_CTOR "_ZN4i18n12phonenumbers11PhoneNumberC1EPN6google8protobuf5ArenaEb"
#define SB_PN_DTOR "_ZN4i18n12phonenumbers11PhoneNumberD1Ev"
extern "C" void sb_phone_number_ctor(void* self, void* arena, bool owned) __asm__(SB_PN_CTOR);
extern "C" void sb_phone_number_dtor(void* self) __asm__(SB_PN_DTOR);

extern "C" void sb_phone_number_ctor(void* self, void* arena, bool owned) {
  static const auto f = real<void (*)(void*, void*, bool)>(SB_PN_CTOR);
  f(self, arena, owned);
}

extern "C" void sb_phone_number_dtor(void* self) {
  static const auto f = real<void (*)(void*)>(SB_PN_DTOR);
  f(self);
}
