// Rolling 24 h quota in minute buckets; conservative so the limit is never exceeded.
#include "throttle/daily_quota.h"

#include <algorithm>
#include <charconv>
#include <vector>

namespace sb {

void DailyQuota::advance(uint64_t minute) {
  if (minute <= newest_) return;
  // Minutes newest_-kBuckets+1 .. minute-kBuckets fall out of the ring.
  const uint64_t steps = std::min<uint64_t>(minute - newest_, kBuckets);
  for (uint64_t i = 1; i <= steps; ++i) {
    uint64_t& c = counts_[slot(newest_ + i)];
    total_ -= c;
    c = 0;
  }
  newest_ = minute;
}

uint64_t DailyQuota::sum_from(uint64_t first) const {
  // The ring holds minutes ring_first() .. newest_; later minutes are empty.
  uint64_t s = total_;
  for (uint64_t m = ring_first(); m < first && m <= newest_; ++m) s -= counts_[slot(m)];
  return s;
}

uint64_t DailyQuota::count(uint64_t now) const {
  const uint64_t first = first_minute(std::max(now, newest_ * kBucketMs));
  return first > newest_ ? 0 : sum_from(first);
}

uint64_t DailyQuota::check(uint64_t now, uint64_t recipients) const {
  if (recipients > limit_) return kNever;
  const uint64_t effective_now = std::max(now, newest_ * kBucketMs);
  uint64_t used = count(effective_now);
  if (used + recipients <= limit_) return 0;
  // Walk minutes from the oldest still counted: minute m stops counting at (m+1)*g + W - 1.
  for (uint64_t m = first_minute(effective_now); m <= newest_; ++m) {
    used -= counts_[slot(m)];
    if (used + recipients <= limit_) return (m + 1) * kBucketMs + kWindowMs - 1;
  }
  return effective_now;  // unreachable: an empty window fits any recipients <= limit
}

void DailyQuota::take(uint64_t now, uint64_t recipients) {
  advance(now / kBucketMs);
  counts_[slot(newest_)] += recipients;
  total_ += recipients;
}

void DailyQuota::refund(uint64_t charged_at, uint64_t recipients) {
  const uint64_t minute = charged_at / kBucketMs;
  if (minute > newest_ || newest_ - minute >= kBuckets) return;
  uint64_t& c = counts_[slot(minute)];
  const uint64_t back = std::min(c, recipients);
  c -= back;
  total_ -= back;
}

std::string DailyQuota::serialise(uint64_t now) const {
  std::string out = "dq1";
  const uint64_t effective_now = std::max(now, newest_ * kBucketMs);
  uint64_t first = std::max(first_minute(effective_now), ring_first());
  while (first <= newest_ && counts_[slot(first)] == 0) ++first;
  if (first > newest_ || total_ == 0) return out;
  uint64_t last = newest_;
  while (counts_[slot(last)] == 0) --last;
  out += ' ' + std::to_string(first) + ' ';
  uint64_t zeros = 0;
  bool need_comma = false;
  for (uint64_t m = first; m <= last; ++m) {
    const uint64_t c = counts_[slot(m)];
    if (c == 0) {
      ++zeros;
      continue;
    }
    if (zeros) {
      out += (need_comma ? ",z" : "z") + std::to_string(zeros);
      need_comma = true;
      zeros = 0;
    }
    if (need_comma) out += ',';
    out += std::to_string(c);
    need_comma = true;
  }
  return out;
}

Status DailyQuota::restore(std::string_view text) {
  auto bad = [&](std::string_view why) -> Status {
    std::string shown(text.substr(0, 80));
    if (text.size() > 80) shown += "...";
    return make_error(ErrDomain::kConfig,
                      "bad daily quota state \"" + shown + "\": " + std::string(why));
  };
  auto read = [](std::string_view& s, uint64_t& v) {
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc() || r.ptr == s.data()) return false;
    s.remove_prefix(size_t(r.ptr - s.data()));
    return true;
  };
  std::string_view s = text;
  if (s.substr(0, 3) != "dq1") return bad("unknown format (expected dq1)");
  s.remove_prefix(3);
  std::vector<std::pair<uint64_t, uint64_t>> entries;  // minute, count
  if (!s.empty()) {
    if (s[0] != ' ') return bad("expected a space after dq1");
    s.remove_prefix(1);
    uint64_t minute = 0;
    if (!read(s, minute)) return bad("expected the first minute");
    if (s.empty() || s[0] != ' ') return bad("expected counts after the first minute");
    s.remove_prefix(1);
    while (true) {
      if (!s.empty() && s[0] == 'z') {
        s.remove_prefix(1);
        uint64_t z = 0;
        if (!read(s, z) || z == 0 || z >= kBuckets) return bad("bad run of empty minutes");
        minute += z;
      } else {
        uint64_t c = 0;
        if (!read(s, c)) return bad("expected a count");
        if (c > (uint64_t(1) << 40)) return bad("count too large");
        if (c) entries.emplace_back(minute, c);
        ++minute;
      }
      if (s.empty()) break;
      if (s[0] != ',') return bad("expected a comma between counts");
      s.remove_prefix(1);
    }
    if (entries.empty()) return bad("no counts");
    if (entries.back().first - entries.front().first >= kBuckets) return bad("spans over 24 h");
  }
  counts_.fill(0);
  total_ = 0;
  newest_ = 0;
  if (!entries.empty()) {
    newest_ = entries.back().first;
    for (const auto& [m, c] : entries) {
      counts_[slot(m)] += c;
      total_ += c;
    }
  }
  return {};
}

}  // namespace sb
