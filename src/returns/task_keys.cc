// task_match_keys: the keys live in the task's meta table; randomness from OpenSSL.
#include "returns/task_keys.h"

#include <openssl/rand.h>

namespace sb {

Result<MatchKeys> task_match_keys(TaskStore& store, bool create_verp) {
  MatchKeys k;
  auto tk = store.get_meta("task_key");
  if (!tk.ok()) return tk.error();
  if (tk->has_value()) k.task_key = **tk;
  auto vk = store.get_meta(kVerpKeyMeta);
  if (!vk.ok()) return vk.error();
  if (vk->has_value()) {
    k.verp_key = **vk;
  } else if (create_verp) {
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1) {
      return make_error(ErrDomain::kSys, "no randomness for the VERP key (RAND_bytes failed)");
    }
    static constexpr char kHex[] = "0123456789abcdef";
    for (unsigned char c : raw) {
      k.verp_key += kHex[c >> 4];
      k.verp_key += kHex[c & 15];
    }
    if (auto s = store.set_meta(kVerpKeyMeta, k.verp_key); !s) return s.error();
  }
  return k;
}

}  // namespace sb
