// The doctor's check sequence; each family lives in its own file.
#include "doctor/doctor.h"

#include "doctor/dmarc_check.h"
#include "doctor/message_check.h"
#include "doctor/mta_sts_check.h"
#include "doctor/mx_check.h"
#include "doctor/org_domain.h"
#include "doctor/rdns_check.h"
#include "doctor/spf_check.h"
#include "doctor/starttls_check.h"

namespace sb::doctor {

Report run_checks(const DoctorInput& in, DnsSource& dns) {
  Report rep;
  std::string from_domain = domain_of(in.from_address);
  std::string env_domain = domain_of(in.envelope_from);

  SpfOutcome spf = check_spf({in.envelope_from, in.helo, in.ips}, dns);
  rep.add(std::move(spf.rows));
  DkimOutcome dkim = check_dkim(in.dkim, from_domain, dns);
  rep.add(std::move(dkim.rows));
  if (!from_domain.empty()) {
    rep.add(check_dmarc({from_domain, env_domain, spf.pass, dkim.passing_domains}, dns));
  }
  // A relay's HELO name is the relay's business; ours matters only when we are the sender.
  rep.add(check_reverse_dns(in.ips, in.ips_from_relay ? std::string() : in.helo, dns));
  if (!from_domain.empty()) rep.add(check_accepts_mail(from_domain, "From", dns));
  if (!env_domain.empty() && env_domain != from_domain) {
    rep.add(check_accepts_mail(env_domain, "return-path", dns));
  }
  if (!from_domain.empty()) rep.add(check_mta_sts(from_domain, dns));

  if (!in.relay_addrs.empty()) {
    if (in.relay_implicit_tls) {
      rep.add(Row{"starttls", in.relay_name, Verdict::kPass, "implicit TLS (--tls implicit)",
                  "TLS to the relay", ""});
    } else {
      rep.add(starttls_row(
          in.relay_name, probe_ehlo(in.relay_addrs.front(), in.helo.empty() ? "localhost" : in.helo,
                                    in.timeout_ms)));
    }
  } else if (in.direct) {
    std::vector<std::string> domains = domains_by_count(in.recipient_domains);
    rep.add(check_mx_starttls(domains, dns, in.helo.empty() ? "localhost" : in.helo, in.mx_port,
                              in.timeout_ms));
  }

  if (in.rendered.empty()) {
    rep.add(Row{"message", "", Verdict::kFail,
                "the template could not be rendered: " + in.render_error,
                "a message send can render", "fix the template"});
  } else {
    rep.add(check_message(in.rendered, in.template_raw));
  }
  if (!in.recipient_domains.empty()) rep.add(check_recipients(in.recipient_domains, dns));
  return rep;
}

}  // namespace sb::doctor
