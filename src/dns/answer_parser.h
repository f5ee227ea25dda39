// DNS answer parser: raw wire-format answers (via ldns) into plain structs; no I/O.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace sb::dns {

// The record types smtpblast asks for; the value is the IANA type code.
enum class RecordType : uint16_t {
  kA = 1,
  kCname = 5,
  kSoa = 6,
  kPtr = 12,
  kMx = 15,
  kTxt = 16,
  kAaaa = 28,
  kTlsa = 52,
};
const char* record_type_name(RecordType t);

// Response codes (RFC 1035 §4.1.1, RFC 6895); others keep their numeric value.
enum class Rcode : uint16_t {
  kNoError = 0,
  kFormErr = 1,
  kServFail = 2,
  kNxDomain = 3,
  kNotImp = 4,
  kRefused = 5,
};
std::string rcode_name(Rcode r);

struct IpAddress {
  enum class Family : uint8_t { kV4, kV6 };
  Family family = Family::kV4;
  std::array<uint8_t, 16> bytes{};  // the first 4 used for IPv4, network order

  static IpAddress v4(const uint8_t* b);
  static IpAddress v6(const uint8_t* b);
  bool is_v6() const { return family == Family::kV6; }
  std::string to_string() const;  // "192.0.2.1" or "2001:db8::1"
  // The socket address to connect to this address on `port`.
  void to_sockaddr(uint16_t port, sockaddr_storage& out) const;
  bool operator==(const IpAddress&) const = default;
};

struct MxRecord {
  uint16_t preference = 0;
  std::string exchange;  // normalised name (see normalise_name); "." is the root
  // RFC 7505: "0 ." says the domain accepts no mail.
  bool is_null() const { return exchange == "."; }
  bool operator==(const MxRecord&) const = default;
};

struct TlsaRecord {
  uint8_t usage = 0;
  uint8_t selector = 0;
  uint8_t matching_type = 0;
  std::vector<uint8_t> data;
  bool operator==(const TlsaRecord&) const = default;
};

// One parsed answer. Only records that belong to the question are kept: those owned by the
// question's name or by a name on its CNAME chain. Everything else (stray records, the
// additional section) is ignored, so a server cannot slip in data for other names.
struct Answer {
  Rcode rcode = Rcode::kNoError;
  bool truncated = false;      // TC bit: the records may be incomplete
  bool authoritative = false;  // AA bit
  std::string qname;           // normalised
  uint16_t qtype = 0;
  // The CNAME chain from qname, in order: {qname's target, that target's target, ...}.
  std::vector<std::string> cname_chain;
  std::vector<MxRecord> mx;
  std::vector<IpAddress> addresses;  // A and AAAA, in answer order
  std::vector<std::string> txt;      // each record's character-strings concatenated
  std::vector<TlsaRecord> tlsa;
  std::vector<std::string> ptr;  // PTR targets, normalised names (reverse DNS)
  // Minimum TTL of the kept answer records (CNAMEs included); nullopt when there are none.
  std::optional<uint32_t> min_ttl;
  // RFC 2308 §5: min(SOA TTL, SOA MINIMUM) of the SOA in the authority section, if any.
  std::optional<uint32_t> negative_ttl;

  // The name the records finally belong to: the end of the CNAME chain, or qname.
  const std::string& canonical_name() const {
    return cname_chain.empty() ? qname : cname_chain.back();
  }
  // NOERROR without a record of the asked type ("NODATA", RFC 2308 §2.2).
  bool no_data() const;
};

// The longest CNAME chain followed; longer is treated as a loop (BIND uses 16 too).
inline constexpr size_t kMaxCnameChain = 16;

// Parses a complete DNS response. A packet that is cut short, malformed, not a response, or
// has no question gives an error (domain kAres); it never crashes on any input.
Result<Answer> parse_answer(const uint8_t* data, size_t size);

// Lower-cases ASCII, drops one trailing dot, maps the root to ".". Used for every name the
// parser returns, so callers can compare names with ==.
std::string normalise_name(std::string_view name);

}  // namespace sb::dns
