// SMSC-side PDU bytes for the SMS tests, written by hand from SMPP 3.4 (not by the code under
// test), and a splitter for what the session sent.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sb::test {

inline void put32(std::string& s, uint32_t v) {
  for (int sh = 24; sh >= 0; sh -= 8) s.push_back(static_cast<char>((v >> sh) & 0xFF));
}
inline uint32_t get32(std::string_view s, size_t off) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(s[off + i]);
  return v;
}
inline std::string cstr(std::string_view s) { return std::string(s) + '\0'; }

inline std::string pdu(uint32_t id, uint32_t status, uint32_t seq, std::string_view body = {}) {
  std::string s;
  put32(s, static_cast<uint32_t>(16 + body.size()));
  put32(s, id);
  put32(s, status);
  put32(s, seq);
  s.append(body);
  return s;
}

inline std::string bind_resp(uint32_t seq, uint32_t status = 0, std::string_view sysid = "SMSC") {
  return pdu(0x80000009, status, seq, status == 0 ? cstr(sysid) : std::string());
}
inline std::string submit_resp(uint32_t seq, uint32_t status, std::string_view id) {
  return pdu(0x80000004, status, seq, status == 0 ? cstr(id) : std::string());
}
inline std::string tlv(uint16_t tag, std::string_view value) {
  std::string s;
  s.push_back(static_cast<char>(tag >> 8));
  s.push_back(static_cast<char>(tag & 0xFF));
  s.push_back(static_cast<char>(value.size() >> 8));
  s.push_back(static_cast<char>(value.size() & 0xFF));
  s.append(value);
  return s;
}
inline std::string deliver_sm(uint32_t seq, std::string_view from, std::string_view to, uint8_t esm,
                              uint8_t dcs, std::string_view sm, std::string_view tlvs = {}) {
  std::string b = cstr("");  // service_type
  b.push_back(1);            // source TON/NPI
  b.push_back(1);
  b += cstr(from);
  b.push_back(5);
  b.push_back(0);
  b += cstr(to);
  b.push_back(static_cast<char>(esm));
  b.push_back(0);  // protocol_id
  b.push_back(0);  // priority
  b += cstr("");   // schedule_delivery_time
  b += cstr("");   // validity_period
  b.push_back(0);  // registered_delivery
  b.push_back(0);  // replace_if_present
  b.push_back(static_cast<char>(dcs));
  b.push_back(0);  // sm_default_msg_id
  b.push_back(static_cast<char>(sm.size()));
  b.append(sm);
  b.append(tlvs);
  return pdu(0x00000005, 0, seq, b);
}
inline std::string receipt(uint32_t seq, std::string_view phone, std::string_view id,
                           std::string_view stat, std::string_view err = "000") {
  std::string text =
      "id:" + std::string(id) +
      " sub:001 dlvrd:001 submit date:2612031200 done date:2612031201 stat:" + std::string(stat) +
      " err:" + std::string(err) + " text:Hello";
  return deliver_sm(seq, phone, "Shop", 0x04, 0, text);
}

struct Sent {
  uint32_t id, status, seq;
  std::string body;
  // submit_sm fields
  std::string source, dest, short_message;
  uint8_t source_ton = 0, source_npi = 0, esm_class = 0, data_coding = 0, registered = 0;
};

// Splits the bytes the session wrote into PDUs, decoding submit_sm's fields.
inline std::vector<Sent> split(std::string_view all) {
  std::vector<Sent> out;
  while (all.size() >= 16) {
    uint32_t len = get32(all, 0);
    if (len < 16 || len > all.size()) break;
    Sent s{get32(all, 4), get32(all, 8), get32(all, 12), std::string(all.substr(16, len - 16))};
    if (s.id == 0x00000004) {
      std::string_view b = s.body;
      size_t o = b.find('\0') + 1;  // service_type
      s.source_ton = static_cast<uint8_t>(b[o]);
      s.source_npi = static_cast<uint8_t>(b[o + 1]);
      o += 2;
      size_t e = b.find('\0', o);
      s.source = std::string(b.substr(o, e - o));
      o = e + 1 + 2;
      e = b.find('\0', o);
      s.dest = std::string(b.substr(o, e - o));
      o = e + 1;
      s.esm_class = static_cast<uint8_t>(b[o]);
      o += 3;
      o = b.find('\0', o) + 1;  // schedule
      o = b.find('\0', o) + 1;  // validity
      s.registered = static_cast<uint8_t>(b[o]);
      s.data_coding = static_cast<uint8_t>(b[o + 2]);
      size_t sm_len = static_cast<unsigned char>(b[o + 4]);
      s.short_message = std::string(b.substr(o + 5, sm_len));
    }
    out.push_back(std::move(s));
    all.remove_prefix(len);
  }
  return out;
}

}  // namespace sb::test
