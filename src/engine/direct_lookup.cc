// The MX resolver for a DirectLookup.
#include "engine/direct_lookup.h"

#include "dns/mx_resolver.h"

namespace sb {

Result<std::unique_ptr<dns::MxResolver>> make_mx_resolver(uv_loop_s* loop, const DirectLookup& d) {
  dns::ResolverConfig rc;
  rc.servers = d.dns_servers;
  rc.timeout_ms = static_cast<int>(d.dns_timeout_ms);
  dns::MxResolverOptions mo;
  mo.ipv4_only = d.ipv4_only;
  mo.ipv6_only = d.ipv6_only;
  return dns::MxResolver::create(loop, rc, mo);
}

}  // namespace sb
