// ldns, opened on first use (base/lazy_lib.h): only DNS answers (MX, TLSA, SPF, DKIM and
// DMARC records for direct delivery and doctor) are parsed with it. Each function smtpblast
// calls, under ldns's own name, forwards to ldns's.
#include <ldns/ldns.h>

#include "base/lazy_lib.h"

namespace {
// Debian 12's libldns3.
constinit sb::LazyLib ldns_lib("libldns.so.3");
}  // namespace

extern "C" {

const char *ldns_get_errorstr_by_id(ldns_status err) {
  SB_LAZY_REAL(ldns_lib, ldns_get_errorstr_by_id);
  return sb_real(err);
}

bool ldns_pkt_aa(const ldns_pkt *p) {
  SB_LAZY_REAL(ldns_lib, ldns_pkt_aa);
  return sb_real(p);
}

ldns_rr_list *ldns_pkt_answer(const ldns_pkt *p) {
  SB_LAZY_REAL(ldns_lib, ldns_pkt_answer);
  return sb_real(p);
}

ldns_rr_list *ldns_pkt_authority(const ldns_pkt *p) {
  SB_LAZY_REAL(ldns_lib, ldns_pkt_authority);
  return sb_real(p);
}

void ldns_pkt_free(ldns_pkt *packet) {
  SB_LAZY_REAL(ldns_lib, ldns_pkt_free);
  sb_real(packet);
}

ldns_pkt_rcode ldns_pkt_get_rcode(const ldns_pkt *p) {
  SB_LAZY_REAL(ldns_lib, ldns_pkt_get_rcode);
  return sb_real(p);
}

bool ldns_pkt_qr(const ldns_pkt *p) {
  SB_LAZY_REAL(ldns_lib, ldns_pkt_qr);
  return sb_real(p);
}

ldns_rr_list *ldns_pkt_question(const ldns_pkt *p) {
  SB_LAZY_REAL(ldns_lib, ldns_pkt_question);
  return sb_real(p);
}

bool ldns_pkt_tc(const ldns_pkt *p) {
  SB_LAZY_REAL(ldns_lib, ldns_pkt_tc);
  return sb_real(p);
}

uint16_t ldns_rdf2native_int16(const ldns_rdf *rd) {
  SB_LAZY_REAL(ldns_lib, ldns_rdf2native_int16);
  return sb_real(rd);
}

uint32_t ldns_rdf2native_int32(const ldns_rdf *rd) {
  SB_LAZY_REAL(ldns_lib, ldns_rdf2native_int32);
  return sb_real(rd);
}

uint8_t *ldns_rdf_data(const ldns_rdf *rd) {
  SB_LAZY_REAL(ldns_lib, ldns_rdf_data);
  return sb_real(rd);
}

ldns_rdf_type ldns_rdf_get_type(const ldns_rdf *rd) {
  SB_LAZY_REAL(ldns_lib, ldns_rdf_get_type);
  return sb_real(rd);
}

size_t ldns_rdf_size(const ldns_rdf *rd) {
  SB_LAZY_REAL(ldns_lib, ldns_rdf_size);
  return sb_real(rd);
}

ldns_rr_class ldns_rr_get_class(const ldns_rr *rr) {
  SB_LAZY_REAL(ldns_lib, ldns_rr_get_class);
  return sb_real(rr);
}

ldns_rr_type ldns_rr_get_type(const ldns_rr *rr) {
  SB_LAZY_REAL(ldns_lib, ldns_rr_get_type);
  return sb_real(rr);
}

ldns_rr *ldns_rr_list_rr(const ldns_rr_list *rr_list, size_t nr) {
  SB_LAZY_REAL(ldns_lib, ldns_rr_list_rr);
  return sb_real(rr_list, nr);
}

size_t ldns_rr_list_rr_count(const ldns_rr_list *rr_list) {
  SB_LAZY_REAL(ldns_lib, ldns_rr_list_rr_count);
  return sb_real(rr_list);
}

ldns_rdf *ldns_rr_owner(const ldns_rr *rr) {
  SB_LAZY_REAL(ldns_lib, ldns_rr_owner);
  return sb_real(rr);
}

size_t ldns_rr_rd_count(const ldns_rr *rr) {
  SB_LAZY_REAL(ldns_lib, ldns_rr_rd_count);
  return sb_real(rr);
}

ldns_rdf *ldns_rr_rdf(const ldns_rr *rr, size_t nr) {
  SB_LAZY_REAL(ldns_lib, ldns_rr_rdf);
  return sb_real(rr, nr);
}

uint32_t ldns_rr_ttl(const ldns_rr *rr) {
  SB_LAZY_REAL(ldns_lib, ldns_rr_ttl);
  return sb_real(rr);
}

ldns_status ldns_wire2pkt(ldns_pkt **packet, const uint8_t *data, size_t len) {
  SB_LAZY_REAL(ldns_lib, ldns_wire2pkt);
  return sb_real(packet, data, len);
}

}  // extern "C"
