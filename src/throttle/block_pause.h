// "N messages, then a pause": the mailing-tool style limiter (--block-size, --block-pause).
#pragma once

#include <cstdint>

namespace sb {

// The pause is measured from the grant of the block's last message, so "5 then 2m" means the
// 6th message starts exactly 2 minutes after the 5th started. Not persisted: a restart begins
// a fresh block, which is what a user who stopped the run would expect.
class BlockPause {
 public:
  BlockPause(uint64_t block_size, uint64_t pause_ms) : size_(block_size), pause_ms_(pause_ms) {}

  // 0 when allowed now; else the end of the pause.
  uint64_t check(uint64_t now) const { return now < resume_at_ ? resume_at_ : 0; }
  void take(uint64_t now) {
    if (++in_block_ >= size_) {
      in_block_ = 0;
      resume_at_ = now + pause_ms_;
    }
  }

  uint64_t size() const { return size_; }
  uint64_t pause_ms() const { return pause_ms_; }
  uint64_t sent_in_block() const { return in_block_; }
  uint64_t resume_at() const { return resume_at_; }

 private:
  uint64_t size_;
  uint64_t pause_ms_;
  uint64_t in_block_ = 0;
  uint64_t resume_at_ = 0;
};

}  // namespace sb
