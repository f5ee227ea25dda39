// Canned DNS answers for the doctor's checks: names not given are NXDOMAIN.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "doctor/dns_source.h"

namespace sb::doctor::testing {

class CannedDns : public DnsSource {
 public:
  Result<dns::Answer> lookup(const std::string& name, dns::RecordType type) override {
    std::string n = dns::normalise_name(name);
    asked.push_back(n + "/" + dns::record_type_name(type));
    dns::Answer a;
    a.qname = n;
    a.qtype = static_cast<uint16_t>(type);
    if (servfail.count(n) != 0) return make_error(ErrDomain::kAres, "SERVFAIL from every server");
    auto it = answers_.find({n, static_cast<uint16_t>(type)});
    if (it != answers_.end()) return it->second;
    bool exists = false;
    for (const auto& [k, v] : answers_) exists |= k.first == n;
    if (!exists) a.rcode = dns::Rcode::kNxDomain;
    return a;
  }
  dns::Answer& at(const std::string& name, dns::RecordType type) {
    auto& a = answers_[{dns::normalise_name(name), static_cast<uint16_t>(type)}];
    a.qname = dns::normalise_name(name);
    a.qtype = static_cast<uint16_t>(type);
    return a;
  }
  void txt(const std::string& name, std::string value) {
    at(name, dns::RecordType::kTxt).txt.push_back(std::move(value));
  }
  void a(const std::string& name, const std::string& ip) {
    at(name, ip.find(':') == std::string::npos ? dns::RecordType::kA : dns::RecordType::kAaaa)
        .addresses.push_back(parse_ip(ip).value());
  }
  void mx(const std::string& name, uint16_t pref, const std::string& host) {
    at(name, dns::RecordType::kMx).mx.push_back({pref, dns::normalise_name(host)});
  }
  void ptr(const std::string& ip, const std::string& host) {
    at(reverse_name(parse_ip(ip).value()), dns::RecordType::kPtr)
        .ptr.push_back(dns::normalise_name(host));
  }
  std::vector<std::string> asked;
  std::map<std::string, int> servfail;

 private:
  std::map<std::pair<std::string, uint16_t>, dns::Answer> answers_;
};

inline dns::IpAddress ip(const std::string& s) { return parse_ip(s).value(); }

}  // namespace sb::doctor::testing
