// DKIM record checks; key sizes from the DER public key with OpenSSL.
#include "doctor/dkim_check.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cctype>

#include "base/text.h"
#include "doctor/org_domain.h"

namespace sb::doctor {

namespace {

std::string strip_ws(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (!std::isspace(static_cast<unsigned char>(c))) out.push_back(c);
  }
  return out;
}

// Bits of the public key in base64 DER (SubjectPublicKeyInfo); 0 when unreadable.
int key_bits(const std::string& b64) {
  std::string der(b64.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(der.data()),
                          reinterpret_cast<const unsigned char*>(b64.data()),
                          static_cast<int>(b64.size()));
  if (n <= 0) return 0;
  size_t pad = 0;
  for (size_t i = b64.size(); i > 0 && b64[i - 1] == '='; --i) ++pad;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  EVP_PKEY* k = d2i_PUBKEY(nullptr, &p, n - static_cast<int>(pad));
  if (k == nullptr) return 0;
  int bits = EVP_PKEY_get_bits(k);
  EVP_PKEY_free(k);
  return bits;
}

std::string shorten(const std::string& record) {
  // Keys are long: show the start and the end of p=, enough to tell two keys apart.
  size_t p = record.find("p=");
  if (p == std::string::npos || record.size() - p < 40) return record;
  size_t end = record.find(';', p);
  std::string key =
      record.substr(p + 2, end == std::string::npos ? std::string::npos : end - p - 2);
  std::string k = strip_ws(key);
  if (k.size() < 40) return record;
  return record.substr(0, p + 2) + k.substr(0, 16) + "..." + k.substr(k.size() - 16) +
         (end == std::string::npos ? "" : record.substr(end));
}

}  // namespace

std::map<std::string, std::string> parse_tags(const std::string& record) {
  std::map<std::string, std::string> tags;
  size_t i = 0;
  while (i <= record.size()) {
    size_t semi = record.find(';', i);
    if (semi == std::string::npos) semi = record.size();
    std::string part = record.substr(i, semi - i);
    size_t eq = part.find('=');
    if (eq != std::string::npos) {
      std::string name = std::string(trim_space(part.substr(0, eq), " \t\r\n"));
      lower_ascii_in_place(name);
      tags.emplace(name, std::string(trim_space(part.substr(eq + 1), " \t\r\n")));
    }
    i = semi + 1;
  }
  return tags;
}

DkimOutcome check_dkim(const std::vector<DkimKey>& keys, const std::string& from_domain,
                       DnsSource& dns) {
  DkimOutcome out;
  if (keys.empty()) {
    out.rows.push_back({"dkim", from_domain, Verdict::kFail, "no --dkim-key: messages go unsigned",
                        "a DKIM signature with d= aligned with the From domain (Gmail, Yahoo "
                        "and Microsoft require it from bulk senders)",
                        "smtpblast dkim-record --dkim-key KEY.pem --dkim-domain " + from_domain +
                            " --dkim-selector SEL, publish what it prints, then send with the "
                            "same --dkim-* flags"});
    return out;
  }
  for (const DkimKey& k : keys) {
    std::string name = k.selector + "._domainkey." + k.domain;
    std::string fix = zone_txt(name, k.expected_record);
    auto want = parse_tags(k.expected_record);
    std::string want_k = want.count("k") ? want["k"] : "rsa";
    Row row{"dkim", name, Verdict::kPass, "", shorten(k.expected_record), ""};
    auto r = dns.lookup(name, dns::RecordType::kTxt);
    std::string found;
    if (r.ok()) {
      for (const std::string& t : r->txt) {
        auto tags = parse_tags(t);
        if (tags.count("p") != 0 || (tags.count("v") && tags["v"] == "DKIM1")) {
          found = t;
          break;
        }
      }
    }
    if (!r.ok() || (r->rcode != dns::Rcode::kNoError && r->rcode != dns::Rcode::kNxDomain)) {
      row.verdict = Verdict::kFail;
      row.evidence = "no DNS answer: " + (r.ok() ? dns::rcode_name(r->rcode) : r.error().message);
      row.fix = "make the name servers of " + k.domain + " answer; the record is\n" + fix;
      out.rows.push_back(row);
      continue;
    }
    if (found.empty()) {
      row.verdict = Verdict::kFail;
      row.evidence = "no DKIM key record at " + name;
      row.fix = fix;
      out.rows.push_back(row);
      continue;
    }
    row.evidence = shorten(found);
    auto tags = parse_tags(found);
    std::string got_k = tags.count("k") ? tags["k"] : "rsa";
    std::string got_p = strip_ws(tags.count("p") ? tags["p"] : "");
    std::string want_p = strip_ws(want["p"]);
    if (tags.count("v") && tags["v"] != "DKIM1") {
      row.verdict = Verdict::kFail;
      row.expected = "v=DKIM1 (or no v=)";
      row.fix = fix;
    } else if (got_p.empty()) {
      row.verdict = Verdict::kFail;
      row.expected = "a key in p= (an empty p= means the key was revoked)";
      row.fix = fix;
    } else if (got_k != want_k) {
      row.verdict = Verdict::kFail;
      row.expected = "k=" + want_k + ": the key is " + (want_k == "rsa" ? "RSA" : "Ed25519") +
                     ", the record says k=" + got_k;
      row.fix = fix;
    } else if (got_p != want_p) {
      row.verdict = Verdict::kFail;
      row.expected = "p= the public half of the --dkim-key for selector " + k.selector +
                     ": the published key is a different one, so every signature fails";
      row.fix = fix;
    } else if (want_k == "rsa") {
      int bits = key_bits(want_p);
      if (bits > 0 && bits < 2048) {
        row.verdict = Verdict::kWarn;
        row.expected =
            "an RSA key of 2048 bits or more (this one has " + std::to_string(bits) + ")";
        row.fix =
            "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out new.pem, "
            "then publish it under a new selector";
      }
    }
    if (row.verdict != Verdict::kFail) out.passing_domains.push_back(k.domain);
    out.rows.push_back(row);
    // Alignment: a signature counts for DMARC only when d= is the From domain or shares its
    // organizational domain (relaxed; the DMARC row applies a strict adkim=s).
    Row al{"dkim-alignment",
           "d=" + k.domain,
           Verdict::kPass,
           "From domain " + from_domain + " (organizational domain " +
               organizational_domain(from_domain) + "), d=" + k.domain + " (" +
               organizational_domain(k.domain) + ")",
           "d= in the From domain's organizational domain",
           ""};
    if (!aligned(k.domain, from_domain, false)) {
      al.verdict = Verdict::kFail;
      al.fix = "sign with --dkim-domain " + from_domain + " (a key published at SEL._domainkey." +
               from_domain + "), or send From an address at " + k.domain;
    }
    out.rows.push_back(al);
  }
  // One aligned signature is enough for DMARC: others that do not align only cost bytes.
  bool any_aligned = false;
  for (const Row& r : out.rows)
    any_aligned |= r.check == "dkim-alignment" && r.verdict == Verdict::kPass;
  for (Row& r : out.rows) {
    if (any_aligned && r.check == "dkim-alignment" && r.verdict == Verdict::kFail) {
      r.verdict = Verdict::kWarn;
    }
  }
  return out;
}

}  // namespace sb::doctor
