// DNS answer parser: ldns decodes the wire format; this file picks out what smtpblast needs.
#include "dns/answer_parser.h"

#include <arpa/inet.h>
#include <ldns/ldns.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <unordered_map>

namespace sb::dns {

const char* record_type_name(RecordType t) {
  switch (t) {
    case RecordType::kA:
      return "A";
    case RecordType::kCname:
      return "CNAME";
    case RecordType::kSoa:
      return "SOA";
    case RecordType::kPtr:
      return "PTR";
    case RecordType::kMx:
      return "MX";
    case RecordType::kTxt:
      return "TXT";
    case RecordType::kAaaa:
      return "AAAA";
    case RecordType::kTlsa:
      return "TLSA";
  }
  return "?";
}

std::string rcode_name(Rcode r) {
  switch (r) {
    case Rcode::kNoError:
      return "NOERROR";
    case Rcode::kFormErr:
      return "FORMERR";
    case Rcode::kServFail:
      return "SERVFAIL";
    case Rcode::kNxDomain:
      return "NXDOMAIN";
    case Rcode::kNotImp:
      return "NOTIMP";
    case Rcode::kRefused:
      return "REFUSED";
  }
  return "RCODE" + std::to_string(static_cast<unsigned>(r));
}

IpAddress IpAddress::v4(const uint8_t* b) {
  IpAddress a;
  a.family = Family::kV4;
  std::memcpy(a.bytes.data(), b, 4);
  return a;
}

IpAddress IpAddress::v6(const uint8_t* b) {
  IpAddress a;
  a.family = Family::kV6;
  std::memcpy(a.bytes.data(), b, 16);
  return a;
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(is_v6() ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
  return buf;
}

void IpAddress::to_sockaddr(uint16_t port, sockaddr_storage& out) const {
  out = sockaddr_storage{};
  if (is_v6()) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&out);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    std::memcpy(&a->sin6_addr, bytes.data(), 16);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&out);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    std::memcpy(&a->sin_addr, bytes.data(), 4);
  }
}

bool Answer::no_data() const {
  if (rcode != Rcode::kNoError) return false;
  switch (static_cast<RecordType>(qtype)) {
    case RecordType::kMx:
      return mx.empty();
    case RecordType::kA:
    case RecordType::kAaaa:
      return addresses.empty();
    case RecordType::kTxt:
      return txt.empty();
    case RecordType::kTlsa:
      return tlsa.empty();
    case RecordType::kPtr:
      return ptr.empty();
    case RecordType::kCname:
      return cname_chain.empty();
    case RecordType::kSoa:
      return false;
  }
  return true;
}

std::string normalise_name(std::string_view name) {
  if (name.size() > 1 && name.back() == '.' &&
      !(name.size() >= 2 && name[name.size() - 2] == '\\')) {
    name.remove_suffix(1);
  }
  if (name.empty() || name == ".") return ".";
  std::string out(name);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

namespace {

struct PktDeleter {
  void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};

// RFC 2181 §8: a TTL with the top bit set is treated as zero.
uint32_t clean_ttl(uint32_t ttl) { return ttl > 0x7fffffffu ? 0 : ttl; }

// Presentation form of a wire-format name (ldns has expanded compression already):
// lower case, no trailing dot, "." for the root, \DDD for bytes that are not LDH-ish.
std::string dname_to_string(const ldns_rdf* rdf) {
  if (rdf == nullptr || ldns_rdf_get_type(rdf) != LDNS_RDF_TYPE_DNAME) return {};
  const uint8_t* p = ldns_rdf_data(rdf);
  size_t n = ldns_rdf_size(rdf);
  std::string out;
  size_t i = 0;
  while (i < n) {
    uint8_t len = p[i++];
    if (len == 0) break;
    if (len > 63 || i + len > n) return {};  // ldns validated this; stay defensive anyway
    if (!out.empty()) out.push_back('.');
    for (size_t k = 0; k < len; ++k) {
      auto c = static_cast<unsigned char>(p[i + k]);
      if (c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c - 'A' + 'a');
      if (c == '.' || c == '\\' || c <= 0x20 || c >= 0x7f) {
        char esc[5];
        std::snprintf(esc, sizeof esc, "\\%03u", static_cast<unsigned>(c));
        out += esc;
      } else {
        out.push_back(static_cast<char>(c));
      }
    }
    i += len;
  }
  return out.empty() ? std::string(".") : out;
}

const ldns_rdf* field(const ldns_rr* rr, size_t i, ldns_rdf_type type, size_t size = 0) {
  if (ldns_rr_rd_count(rr) <= i) return nullptr;
  const ldns_rdf* f = ldns_rr_rdf(rr, i);
  if (f == nullptr || ldns_rdf_get_type(f) != type) return nullptr;
  if (size != 0 && ldns_rdf_size(f) != size) return nullptr;
  return f;
}

Error bad(std::string msg) { return make_error(ErrDomain::kAres, std::move(msg)); }

}  // namespace

Result<Answer> parse_answer(const uint8_t* data, size_t size) {
  if (data == nullptr || size < LDNS_HEADER_SIZE) return bad("DNS answer shorter than a header");
  ldns_pkt* raw = nullptr;
  ldns_status st = ldns_wire2pkt(&raw, data, size);
  std::unique_ptr<ldns_pkt, PktDeleter> pkt(raw);
  if (st != LDNS_STATUS_OK || !pkt) {
    return bad(std::string("malformed DNS answer: ") + ldns_get_errorstr_by_id(st));
  }
  if (!ldns_pkt_qr(pkt.get())) return bad("DNS packet is a query, not an answer");
  const ldns_rr_list* question = ldns_pkt_question(pkt.get());
  if (question == nullptr || ldns_rr_list_rr_count(question) == 0) {
    return bad("DNS answer has no question section");
  }

  Answer a;
  a.rcode = static_cast<Rcode>(ldns_pkt_get_rcode(pkt.get()));
  a.truncated = ldns_pkt_tc(pkt.get());
  a.authoritative = ldns_pkt_aa(pkt.get());
  const ldns_rr* q = ldns_rr_list_rr(question, 0);
  a.qname = dname_to_string(ldns_rr_owner(q));
  a.qtype = static_cast<uint16_t>(ldns_rr_get_type(q));
  if (a.qname.empty()) return bad("DNS answer has an unreadable question name");

  const ldns_rr_list* answer = ldns_pkt_answer(pkt.get());
  size_t count = answer ? ldns_rr_list_rr_count(answer) : 0;

  // Pass 1: the CNAME chain. Owner → target, the first CNAME per owner wins.
  std::unordered_map<std::string, std::pair<std::string, uint32_t>> cnames;
  for (size_t i = 0; i < count; ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(answer, i);
    if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_CNAME) continue;
    const ldns_rdf* target = field(rr, 0, LDNS_RDF_TYPE_DNAME);
    if (target == nullptr) return bad("DNS answer has a CNAME without a target");
    cnames.try_emplace(dname_to_string(ldns_rr_owner(rr)), dname_to_string(target),
                       clean_ttl(ldns_rr_ttl(rr)));
  }
  auto note_ttl = [&a](uint32_t ttl) { a.min_ttl = a.min_ttl ? std::min(*a.min_ttl, ttl) : ttl; };
  std::string cur = a.qname;
  for (auto it = cnames.find(cur); it != cnames.end(); it = cnames.find(cur)) {
    const std::string& next = it->second.first;
    if (next == a.qname || a.cname_chain.size() >= kMaxCnameChain ||
        std::find(a.cname_chain.begin(), a.cname_chain.end(), next) != a.cname_chain.end()) {
      return bad("CNAME loop or overlong CNAME chain at " + cur);
    }
    a.cname_chain.push_back(next);
    note_ttl(it->second.second);
    cur = next;
  }
  const std::string& owner_wanted = a.canonical_name();

  // Pass 2: the records owned by the end of the chain.
  for (size_t i = 0; i < count; ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(answer, i);
    ldns_rr_type type = ldns_rr_get_type(rr);
    if (type == LDNS_RR_TYPE_CNAME || ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN) continue;
    if (dname_to_string(ldns_rr_owner(rr)) != owner_wanted) continue;
    bool kept = true;
    switch (type) {
      case LDNS_RR_TYPE_MX: {
        const ldns_rdf* pref = field(rr, 0, LDNS_RDF_TYPE_INT16, 2);
        const ldns_rdf* host = field(rr, 1, LDNS_RDF_TYPE_DNAME);
        if (pref == nullptr || host == nullptr) return bad("malformed MX record");
        a.mx.push_back(MxRecord{ldns_rdf2native_int16(pref), dname_to_string(host)});
        break;
      }
      case LDNS_RR_TYPE_A: {
        const ldns_rdf* f = field(rr, 0, LDNS_RDF_TYPE_A, 4);
        if (f == nullptr) return bad("malformed A record");
        a.addresses.push_back(IpAddress::v4(ldns_rdf_data(f)));
        break;
      }
      case LDNS_RR_TYPE_AAAA: {
        const ldns_rdf* f = field(rr, 0, LDNS_RDF_TYPE_AAAA, 16);
        if (f == nullptr) return bad("malformed AAAA record");
        a.addresses.push_back(IpAddress::v6(ldns_rdf_data(f)));
        break;
      }
      case LDNS_RR_TYPE_TXT: {
        std::string text;
        for (size_t k = 0; k < ldns_rr_rd_count(rr); ++k) {
          const ldns_rdf* f = field(rr, k, LDNS_RDF_TYPE_STR);
          if (f == nullptr || ldns_rdf_size(f) < 1) return bad("malformed TXT record");
          const uint8_t* d = ldns_rdf_data(f);
          size_t len = d[0];
          if (len + 1 > ldns_rdf_size(f)) return bad("malformed TXT record");
          text.append(reinterpret_cast<const char*>(d + 1), len);
        }
        a.txt.push_back(std::move(text));
        break;
      }
      case LDNS_RR_TYPE_PTR: {
        const ldns_rdf* target = field(rr, 0, LDNS_RDF_TYPE_DNAME);
        if (target == nullptr) return bad("malformed PTR record");
        a.ptr.push_back(dname_to_string(target));
        break;
      }
      case LDNS_RR_TYPE_TLSA: {
        if (ldns_rr_rd_count(rr) != 4) return bad("malformed TLSA record");
        TlsaRecord t;
        uint8_t* parts[3] = {&t.usage, &t.selector, &t.matching_type};
        for (size_t k = 0; k < 3; ++k) {
          const ldns_rdf* f = ldns_rr_rdf(rr, k);
          if (f == nullptr || ldns_rdf_size(f) != 1) return bad("malformed TLSA record");
          *parts[k] = ldns_rdf_data(f)[0];
        }
        const ldns_rdf* d = ldns_rr_rdf(rr, 3);
        if (d == nullptr) return bad("malformed TLSA record");
        t.data.assign(ldns_rdf_data(d), ldns_rdf_data(d) + ldns_rdf_size(d));
        a.tlsa.push_back(std::move(t));
        break;
      }
      default:
        kept = false;
        break;
    }
    if (kept) note_ttl(clean_ttl(ldns_rr_ttl(rr)));
  }

  // RFC 2308 §5: a negative answer lives for min(SOA TTL, SOA MINIMUM).
  const ldns_rr_list* auth = ldns_pkt_authority(pkt.get());
  size_t nauth = auth ? ldns_rr_list_rr_count(auth) : 0;
  for (size_t i = 0; i < nauth; ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(auth, i);
    if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SOA) continue;
    const ldns_rdf* minimum = field(rr, 6, LDNS_RDF_TYPE_PERIOD, 4);
    if (minimum == nullptr) minimum = field(rr, 6, LDNS_RDF_TYPE_INT32, 4);
    if (minimum == nullptr) return bad("malformed SOA record");
    a.negative_ttl =
        std::min(clean_ttl(ldns_rr_ttl(rr)), clean_ttl(ldns_rdf2native_int32(minimum)));
    break;
  }
  return a;
}

}  // namespace sb::dns
