// DirectLookup: how --direct looks up mail exchangers (DNS servers, timeout, port, families).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

struct uv_loop_s;

namespace sb {

namespace dns {
class MxResolver;
}

struct DirectLookup {
  std::vector<std::string> dns_servers;  // empty: /etc/resolv.conf
  uint32_t dns_timeout_ms = 5000;        // the first try; later tries double it
  uint16_t mx_port = 25;
  bool ipv4_only = false;
  bool ipv6_only = false;
};

// An MX resolver on `loop` configured from `d`.
Result<std::unique_ptr<dns::MxResolver>> make_mx_resolver(uv_loop_s* loop, const DirectLookup& d);

}  // namespace sb
