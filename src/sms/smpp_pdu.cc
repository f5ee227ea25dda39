#include "sms/smpp_pdu.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "base/text.h"
#include "sms/gsm_encoding.h"

extern "C" {
// The library's headers depend on one another in this order and include nothing themselves.
// clang-format off
#include <smpp34.h>
#include <smpp34_structs.h>
#include <smpp34_params.h>
#include <smpp34_heap.h>
// clang-format on
}

namespace sb {
namespace {

// libsmpp34 writes a trace of every pack and unpack into one global buffer (smpp34_strerror,
// 2 KB) and a global cursor: two threads packing at once would race on them. Every call into
// the library holds this lock (LibCall); it is uncontended unless several worker loops speak
// SMPP.
std::mutex& lib_mutex() {
  static std::mutex m;
  return m;
}

// The library leaks the TLV node it was filling when that TLV fails to parse (it returns
// before linking the node into the PDU's list), 1 KB per malformed deliver_sm from the SMSC.
// So every block it allocates is recorded, and whatever is still recorded when a call is over
// (after destroy_tlv) is freed. Guarded by lib_mutex.
std::vector<void*>& lib_blocks() {
  static std::vector<void*> v;
  return v;
}
void forget_block(void* p) {
  auto& v = lib_blocks();
  auto it = std::find(v.rbegin(), v.rend(), p);
  if (it != v.rend()) v.erase(std::next(it).base());
}
void* lib_malloc(size_t n) {
  void* p = std::malloc(n);
  if (p) lib_blocks().push_back(p);
  return p;
}
void* lib_realloc(void* p, size_t n) {
  // The library never reallocates (it mallocs nodes); forget before, re-record after.
  forget_block(p);
  void* q = std::realloc(p, n);
  lib_blocks().push_back(q ? q : p);
  return q;
}
void lib_free(void* p) {
  forget_block(p);
  std::free(p);
}

// One call into the library: the lock, and the leftovers freed at the end.
class LibCall {
 public:
  LibCall() : lock_(lib_mutex()) {
    static std::once_flag once;
    std::call_once(once, [] {
      struct smpp34_memory_functions mf {
        lib_malloc, lib_realloc, lib_free
      };
      smpp34_set_memory_functions(&mf);
    });
  }
  ~LibCall() {
    for (void* p : lib_blocks()) std::free(p);
    lib_blocks().clear();
  }
  LibCall(const LibCall&) = delete;
  LibCall& operator=(const LibCall&) = delete;

 private:
  std::lock_guard<std::mutex> lock_;
};

// The trace grows by up to ~60 bytes per TLV, unchecked, and writes past its 2 KB once it is
// full (its length goes negative and snprintf is handed a huge size): a PDU from the SMSC with
// many TLVs must not reach the library. ~700 bytes go to the mandatory fields of a
// deliver_sm; 16 TLVs stay well inside the rest.
constexpr int kMaxTlvs = 16;

uint32_t be32(const char* p) {
  auto b = [&](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(p[i])); };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}
uint16_t be16(const char* p) {
  return static_cast<uint16_t>((static_cast<unsigned char>(p[0]) << 8) |
                               static_cast<unsigned char>(p[1]));
}
void put32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>((v >> 16) & 0xFF));
  out.push_back(static_cast<char>((v >> 8) & 0xFF));
  out.push_back(static_cast<char>(v & 0xFF));
}

// Skips a C-octet string of at most `max` octets (NUL included) at pdu[off].
bool skip_cstr(std::string_view pdu, size_t& off, size_t max) {
  size_t end = pdu.find('\0', off);
  if (end == std::string_view::npos || end - off + 1 > max) return false;
  off = end + 1;
  return true;
}

// Counts the TLVs from pdu[off] to the end; -1 when they do not tile the rest exactly.
int count_tlvs(std::string_view pdu, size_t off) {
  int n = 0;
  while (off < pdu.size()) {
    if (pdu.size() - off < 4) return -1;
    size_t len = be16(pdu.data() + off + 2);
    off += 4 + len;
    if (off > pdu.size()) return -1;
    ++n;
  }
  return n;
}

// Unpacks `pdu` into `t` (inside a LibCall), from a copy with a NUL after the last byte: the
// library measures C-octet strings with strlen and would otherwise read past a PDU whose
// last string has no terminator.
template <class T>
bool unpack(uint32_t type, T& t, std::string_view pdu, std::string& error) {
  thread_local std::string copy;
  copy.assign(pdu);
  copy.push_back('\0');
  std::memset(&t, 0, sizeof t);
  int rc = smpp34_unpack(type, &t, reinterpret_cast<const uint8_t*>(copy.data()),
                         static_cast<int>(pdu.size()));
  if (rc != 0) {
    // The trace's last entry names the field that failed; it is the library's text about our
    // peer's bytes, capped.
    std::string trace(smpp34_strerror, strnlen(smpp34_strerror, sizeof smpp34_strerror));
    size_t last = trace.rfind('[');
    error = std::string("malformed ") + smpp_command_name(type) +
            (last == std::string::npos ? "" : ": " + trace.substr(last, 120));
    return false;
  }
  return true;
}

template <class T>
bool pack(uint32_t type, T& t, std::string& out) {
  uint8_t buf[512];
  int len = 0;
  LibCall call;
  if (smpp34_pack(type, buf, sizeof buf, &len, &t) != 0) return false;
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(len));
  return true;
}

template <size_t N>
bool copy_cstr(uint8_t (&dst)[N], std::string_view s) {
  if (s.size() + 1 > N || s.find('\0') != std::string_view::npos) return false;
  if (!s.empty()) std::memcpy(dst, s.data(), s.size());  // an empty view's data() may be null
  dst[s.size()] = 0;
  return true;
}

template <size_t N>
std::string from_cstr(const uint8_t (&src)[N]) {
  return std::string(reinterpret_cast<const char*>(src),
                     strnlen(reinterpret_cast<const char*>(src), N));
}

void header_only(uint32_t id, uint32_t status, uint32_t seq, std::string& out) {
  // Header-only PDUs are 16 fixed octets; they still go through the library so every PDU we
  // send is packed one way.
  generic_nack_t t;
  std::memset(&t, 0, sizeof t);
  t.command_id = id;
  t.command_status = status;
  t.sequence_number = seq;
  if (!pack(id, t, out)) {
    // The library refuses a status it does not know (a generic_nack echoing a vendor code):
    // the bytes are the same, written directly.
    put32(out, kPduHeaderSize);
    put32(out, id);
    put32(out, status);
    put32(out, seq);
  }
}

}  // namespace

std::string smpp_status_text(uint32_t status) {
  char name[SMALL_BUFF] = {};
  str_command_status(status, name);
  char buf[64];
  if (name[0] != '\0') {
    std::snprintf(buf, sizeof buf, "%s (0x%08X)", name, status);
  } else {
    std::snprintf(buf, sizeof buf, "status 0x%08X", status);
  }
  return buf;
}

const char* smpp_command_name(uint32_t id) {
  switch (id) {
    case smpp_cmd::kGenericNack: return "generic_nack";
    case smpp_cmd::kBindTransceiver: return "bind_transceiver";
    case smpp_cmd::kBindTransceiverResp: return "bind_transceiver_resp";
    case smpp_cmd::kSubmitSm: return "submit_sm";
    case smpp_cmd::kSubmitSmResp: return "submit_sm_resp";
    case smpp_cmd::kDeliverSm: return "deliver_sm";
    case smpp_cmd::kDeliverSmResp: return "deliver_sm_resp";
    case smpp_cmd::kUnbind: return "unbind";
    case smpp_cmd::kUnbindResp: return "unbind_resp";
    case smpp_cmd::kEnquireLink: return "enquire_link";
    case smpp_cmd::kEnquireLinkResp: return "enquire_link_resp";
    default: return "unknown";
  }
}

bool PduReader::next(std::string_view& in, PduHeader& h, std::string_view& pdu) {
  if (failed()) return false;
  if (done_) {
    buf_.clear();
    want_ = kPduHeaderSize;
    done_ = false;
  }
  while (!in.empty()) {
    size_t take = std::min(in.size(), want_ - buf_.size());
    buf_.append(in.substr(0, take));
    in.remove_prefix(take);
    if (buf_.size() < want_) continue;
    if (want_ == kPduHeaderSize) {
      uint32_t len = be32(buf_.data());
      if (len < kPduHeaderSize || len > kMaxPduSize) {
        error_ = "a PDU of " + std::to_string(len) + " octets (command_length out of range)";
        return false;
      }
      want_ = len;
      if (buf_.size() < want_) continue;
    }
    h.length = be32(buf_.data());
    h.command_id = be32(buf_.data() + 4);
    h.status = be32(buf_.data() + 8);
    h.seq = be32(buf_.data() + 12);
    pdu = buf_;
    done_ = true;
    return true;
  }
  return false;
}

bool pack_bind_transceiver(uint32_t seq, const BindParams& p, std::string& out) {
  bind_transceiver_t t;
  std::memset(&t, 0, sizeof t);
  t.command_id = BIND_TRANSCEIVER;
  t.sequence_number = seq;
  t.interface_version = SMPP_VERSION;
  t.addr_ton = p.addr_ton;
  t.addr_npi = p.addr_npi;
  if (!copy_cstr(t.system_id, p.system_id) || !copy_cstr(t.password, p.password) ||
      !copy_cstr(t.system_type, p.system_type) || !copy_cstr(t.address_range, p.address_range)) {
    return false;
  }
  bool ok = pack(BIND_TRANSCEIVER, t, out);
  std::memset(t.password, 0, sizeof t.password);
  return ok;
}

bool pack_submit_sm(uint32_t seq, const SubmitParams& p, std::string& out) {
  submit_sm_t t;
  std::memset(&t, 0, sizeof t);
  t.command_id = SUBMIT_SM;
  t.sequence_number = seq;
  t.source_addr_ton = p.source_ton;
  t.source_addr_npi = p.source_npi;
  t.dest_addr_ton = p.dest_ton;
  t.dest_addr_npi = p.dest_npi;
  t.esm_class = p.esm_class;
  t.registered_delivery = p.registered_delivery;
  t.data_coding = p.data_coding;
  // OCTET8 in the library packs at most 253 octets (it refuses length >= the 254 array).
  if (p.short_message.size() >= sizeof t.short_message) return false;
  if (!copy_cstr(t.source_addr, p.source_addr) || !copy_cstr(t.destination_addr, p.dest_addr)) {
    return false;
  }
  t.sm_length = static_cast<uint8_t>(p.short_message.size());
  std::memcpy(t.short_message, p.short_message.data(), p.short_message.size());
  return pack(SUBMIT_SM, t, out);
}

void pack_deliver_sm_resp(uint32_t seq, uint32_t status, std::string& out) {
  deliver_sm_resp_t t;
  std::memset(&t, 0, sizeof t);
  t.command_id = DELIVER_SM_RESP;
  t.command_status = status;
  t.sequence_number = seq;
  if (!pack(DELIVER_SM_RESP, t, out)) {
    put32(out, kPduHeaderSize + 1);
    put32(out, DELIVER_SM_RESP);
    put32(out, status);
    put32(out, seq);
    out.push_back('\0');
  }
}

void pack_enquire_link(uint32_t seq, std::string& out) {
  header_only(smpp_cmd::kEnquireLink, 0, seq, out);
}
void pack_enquire_link_resp(uint32_t seq, std::string& out) {
  header_only(smpp_cmd::kEnquireLinkResp, 0, seq, out);
}
void pack_unbind(uint32_t seq, std::string& out) { header_only(smpp_cmd::kUnbind, 0, seq, out); }
void pack_unbind_resp(uint32_t seq, std::string& out) {
  header_only(smpp_cmd::kUnbindResp, 0, seq, out);
}
void pack_generic_nack(uint32_t seq, uint32_t status, std::string& out) {
  header_only(smpp_cmd::kGenericNack, status, seq, out);
}

bool parse_bind_resp(std::string_view pdu, std::string& system_id, std::string& error) {
  system_id.clear();
  size_t off = kPduHeaderSize;
  if (pdu.size() == kPduHeaderSize) return true;  // an error response may carry no body
  if (!skip_cstr(pdu, off, 16) || count_tlvs(pdu, off) > kMaxTlvs || count_tlvs(pdu, off) < 0) {
    error = "malformed bind_transceiver_resp";
    return false;
  }
  bind_transceiver_resp_t t;
  LibCall call;
  bool ok = unpack(BIND_TRANSCEIVER_RESP, t, pdu, error);
  if (ok) system_id = from_cstr(t.system_id);
  destroy_tlv(t.tlv);
  return ok;
}

bool parse_submit_sm_resp(std::string_view pdu, std::string& message_id, std::string& error) {
  message_id.clear();
  submit_sm_resp_t t;
  LibCall call;
  if (!unpack(SUBMIT_SM_RESP, t, pdu, error)) return false;
  message_id = from_cstr(t.message_id);
  return true;
}

bool parse_deliver_sm(std::string_view pdu, DeliverSm& d, std::string& error) {
  // Walk the mandatory fields first to bound the TLVs (kMaxTlvs) before the library sees them.
  size_t off = kPduHeaderSize;
  bool shape = skip_cstr(pdu, off, 6) && off + 2 <= pdu.size() && ((off += 2), true) &&
               skip_cstr(pdu, off, 21) && off + 2 <= pdu.size() && ((off += 2), true) &&
               skip_cstr(pdu, off, 21) && off + 3 <= pdu.size() && ((off += 3), true) &&
               skip_cstr(pdu, off, 17) && skip_cstr(pdu, off, 17) && off + 5 <= pdu.size();
  if (shape) {
    size_t sm_len = static_cast<unsigned char>(pdu[off + 4]);
    off += 5 + sm_len;
    int n = off <= pdu.size() ? count_tlvs(pdu, off) : -1;
    shape = n >= 0 && n <= kMaxTlvs;
  }
  if (!shape) {
    error = "malformed deliver_sm";
    return false;
  }
  deliver_sm_t t;
  LibCall call;
  bool ok = unpack(DELIVER_SM, t, pdu, error);
  if (ok) {
    d.source_addr = from_cstr(t.source_addr);
    d.dest_addr = from_cstr(t.destination_addr);
    d.esm_class = t.esm_class;
    d.data_coding = t.data_coding;
    d.short_message.assign(reinterpret_cast<const char*>(t.short_message),
                           std::min<size_t>(t.sm_length, sizeof t.short_message));
    d.receipted_id.clear();
    d.message_state = -1;
    tlv_t* tlv;
    smpp34_tlv_for_each(tlv, t.tlv) {
      if (tlv->tag == TLVID_receipted_message_id) {
        size_t n = std::min<size_t>(tlv->length, sizeof tlv->value.octet);
        std::string id(reinterpret_cast<const char*>(tlv->value.octet), n);
        d.receipted_id = id.substr(0, id.find('\0'));
      } else if (tlv->tag == TLVID_message_state) {
        d.message_state = tlv->value.val08;
      } else if (tlv->tag == TLVID_message_payload && d.short_message.empty()) {
        d.short_message.assign(reinterpret_cast<const char*>(tlv->value.octet),
                               std::min<size_t>(tlv->length, sizeof tlv->value.octet));
      }
    }
  }
  destroy_tlv(t.tlv);
  return ok;
}

// ---- Receipts ----------------------------------------------------------------------------

const char* receipt_state_name(ReceiptState s) {
  switch (s) {
    case ReceiptState::kDelivered: return "delivered";
    case ReceiptState::kExpired: return "expired";
    case ReceiptState::kDeleted: return "deleted";
    case ReceiptState::kUndeliverable: return "undeliverable";
    case ReceiptState::kAccepted: return "accepted";
    case ReceiptState::kUnknown: return "unknown";
    case ReceiptState::kRejected: return "rejected";
    case ReceiptState::kEnroute: return "enroute";
  }
  return "unknown";
}

bool receipt_final(ReceiptState s) {
  return s != ReceiptState::kEnroute && s != ReceiptState::kAccepted && s != ReceiptState::kUnknown;
}

namespace {

ReceiptState state_from_stat(std::string_view stat) {
  struct Name {
    const char* text;
    ReceiptState s;
  };
  static constexpr Name kNames[] = {
      {"DELIVRD", ReceiptState::kDelivered},     {"DELIVERED", ReceiptState::kDelivered},
      {"EXPIRED", ReceiptState::kExpired},       {"DELETED", ReceiptState::kDeleted},
      {"UNDELIV", ReceiptState::kUndeliverable}, {"UNDELIVERABLE", ReceiptState::kUndeliverable},
      {"ACCEPTD", ReceiptState::kAccepted},      {"REJECTD", ReceiptState::kRejected},
      {"REJECTED", ReceiptState::kRejected},     {"ENROUTE", ReceiptState::kEnroute},
      {"UNKNOWN", ReceiptState::kUnknown},
  };
  for (const Name& n : kNames) {
    if (iequals(stat, n.text)) return n.s;
  }
  return ReceiptState::kUnknown;
}

// message_state TLV values (SMPP 3.4 §5.2.28).
bool state_from_tlv(int v, ReceiptState& s) {
  switch (v) {
    case 1: s = ReceiptState::kEnroute; return true;
    case 2: s = ReceiptState::kDelivered; return true;
    case 3: s = ReceiptState::kExpired; return true;
    case 4: s = ReceiptState::kDeleted; return true;
    case 5: s = ReceiptState::kUndeliverable; return true;
    case 6: s = ReceiptState::kAccepted; return true;
    case 7: s = ReceiptState::kUnknown; return true;
    case 8: s = ReceiptState::kRejected; return true;
    default: return false;
  }
}

// Receipt field values are short tokens; a value is capped so a hostile receipt cannot grow
// what we store.
constexpr size_t kMaxField = 64;

std::string clean_field(std::string_view v, size_t cap = kMaxField) {
  std::string s;
  for (char c : v.substr(0, cap)) {
    unsigned char u = static_cast<unsigned char>(c);
    s.push_back(u >= 0x20 && u < 0x7F ? c : '?');
  }
  return s;
}

}  // namespace

bool parse_receipt_text(std::string_view text, DeliveryReceipt& r) {
  // Keys, longest first where one is a suffix of another's start ("submit date" vs "sub").
  // Some SMSCs write "submit_date" / "done_date"; the code is the field (0..7).
  static constexpr struct {
    std::string_view name;
    int code;
  } kKeys[] = {{"id", 0},          {"sub", 1},       {"dlvrd", 2},     {"submit date", 3},
               {"submit_date", 3}, {"done date", 4}, {"done_date", 4}, {"stat", 5},
               {"err", 6},         {"text", 7}};
  // Finds every "key:" at the start or after a space; a value runs to the next key.
  struct Hit {
    size_t key_pos, value_pos;
    int key;
  };
  std::vector<Hit> hits;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i > 0 && text[i - 1] != ' ') continue;
    for (const auto& k : kKeys) {
      std::string_view key = k.name;
      if (i + key.size() < text.size() && iequals(text.substr(i, key.size()), key) &&
          text[i + key.size()] == ':') {
        hits.push_back({i, i + key.size() + 1, k.code});
        break;
      }
    }
    // Everything after "text:" is the text, even if it looks like keys.
    if (!hits.empty() && hits.back().key == 7) break;
  }
  bool any = false;
  for (size_t h = 0; h < hits.size(); ++h) {
    size_t end = h + 1 < hits.size() ? hits[h + 1].key_pos : text.size();
    std::string_view v = text.substr(hits[h].value_pos, end - hits[h].value_pos);
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    switch (hits[h].key) {
      case 0:
        r.id = clean_field(v);
        any = true;
        break;
      case 3: r.submit_date = clean_field(v); break;
      case 4: r.done_date = clean_field(v); break;
      case 5:
        r.stat = clean_field(v);
        r.state = state_from_stat(v);
        any = true;
        break;
      case 6: r.err = clean_field(v); break;
      case 7: r.text = clean_field(v, 160); break;
      default: break;  // sub, dlvrd: counts we do not keep
    }
  }
  return any;
}

bool receipt_from_deliver(const DeliverSm& d, DeliveryReceipt& r) {
  r = DeliveryReceipt{};
  bool any = parse_receipt_text(d.short_message, r);
  if (!d.receipted_id.empty()) {
    r.id = clean_field(d.receipted_id);
    any = true;
  }
  ReceiptState s;
  if (state_from_tlv(d.message_state, s)) {
    r.state = s;
    if (r.stat.empty()) r.stat = receipt_state_name(s);
    any = true;
  }
  r.phone = clean_field(d.source_addr, 21);
  return any && !r.id.empty();
}

namespace {

bool parse_base(std::string_view s, int base, uint64_t& v) {
  if (s.empty() || s.size() > 20) return false;
  v = 0;
  for (char c : s) {
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : 99;
    if (d >= base) return false;
    if (v > (UINT64_MAX - static_cast<uint64_t>(d)) / static_cast<uint64_t>(base)) return false;
    v = v * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
  }
  return true;
}

}  // namespace

bool smpp_ids_match(std::string_view a, std::string_view b) {
  if (a.empty() || b.empty()) return false;
  if (iequals(a, b)) return true;
  uint64_t x, y;
  return (parse_base(a, 16, x) && parse_base(b, 10, y) && x == y) ||
         (parse_base(a, 10, x) && parse_base(b, 16, y) && x == y);
}

bool MobileOriginated::is_stop() const {
  std::string_view t = text;
  while (!t.empty() && (t.front() == ' ' || t.front() == '\n' || t.front() == '\r' ||
                        t.front() == '\t' || t.front() == '.' || t.front() == '!')) {
    t.remove_prefix(1);
  }
  while (!t.empty() && (t.back() == ' ' || t.back() == '\n' || t.back() == '\r' ||
                        t.back() == '\t' || t.back() == '.' || t.back() == '!')) {
    t.remove_suffix(1);
  }
  // Inner blanks count once: "STOP  ALL" and "stop\tall" are "STOP ALL".
  std::string words;
  for (char c : t) {
    bool blank = c == ' ' || c == '\t' || c == '\n' || c == '\r';
    if (!blank) {
      words += c;
    } else if (words.empty() || words.back() != ' ') {
      words += ' ';
    }
  }
  static constexpr std::string_view kWords[] = {
      "STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "STOPP", "ABMELDEN"};
  for (std::string_view w : kWords) {
    if (iequals(words, w)) return true;
  }
  return false;
}

MobileOriginated mo_from_deliver(const DeliverSm& d) {
  MobileOriginated mo;
  mo.from = clean_field(d.source_addr, 21);
  mo.to = clean_field(d.dest_addr, 21);
  std::string_view body = d.short_message;
  // A concatenated MO part starts with a UDH (esm_class UDHI): the text follows it.
  if ((d.esm_class & 0x40) && !body.empty()) {
    size_t udh = static_cast<unsigned char>(body[0]) + 1u;
    body.remove_prefix(std::min(udh, body.size()));
  }
  mo.text = decode_sms_text(body, d.data_coding);
  return mo;
}

}  // namespace sb
