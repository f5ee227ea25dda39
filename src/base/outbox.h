// Outbox: bytes queued for one socket write, as slices of owned copies or referenced memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sb {

// Commands are copied into one owned buffer; message bodies are referenced, not copied, and
// must stay alive until the write that carries them completes. Slices into the owned buffer
// are kept as offsets because the buffer may grow while the slices are collected.
class Outbox {
 public:
  void append(std::string_view s) {
    if (s.empty()) return;
    if (!slices_.empty() && slices_.back().ext == nullptr &&
        slices_.back().off + slices_.back().len == owned_.size()) {
      slices_.back().len += s.size();
    } else {
      slices_.push_back(Slice{nullptr, owned_.size(), s.size()});
    }
    owned_.append(s);
    bytes_ += s.size();
  }
  void append_ref(std::string_view s) {
    if (s.empty()) return;
    slices_.push_back(Slice{s.data(), 0, s.size()});
    bytes_ += s.size();
  }
  bool empty() const { return bytes_ == 0; }
  size_t bytes() const { return bytes_; }
  size_t slice_count() const { return slices_.size(); }
  // The i-th slice as a view; valid until the next append or clear.
  std::string_view slice(size_t i) const {
    const Slice& s = slices_[i];
    return s.ext ? std::string_view(s.ext, s.len) : std::string_view(owned_.data() + s.off, s.len);
  }
  // Keeps capacity so steady-state sending allocates nothing.
  void clear() {
    slices_.clear();
    owned_.clear();
    bytes_ = 0;
  }
  void swap(Outbox& o) {
    slices_.swap(o.slices_);
    owned_.swap(o.owned_);
    std::swap(bytes_, o.bytes_);
  }
  // Appends o's slices, copying its owned bytes and keeping its references.
  void append_from(const Outbox& o) {
    for (const Slice& s : o.slices_) {
      if (s.ext)
        append_ref(std::string_view(s.ext, s.len));
      else
        append(std::string_view(o.owned_.data() + s.off, s.len));
    }
  }
  // Everything as one string (tests, TLS).
  std::string flatten() const {
    std::string s;
    s.reserve(bytes_);
    for (size_t i = 0; i < slices_.size(); ++i) s.append(slice(i));
    return s;
  }

 private:
  struct Slice {
    const char* ext;  // null: owned_[off, off+len)
    size_t off;
    size_t len;
  };
  std::vector<Slice> slices_;
  std::string owned_;
  size_t bytes_ = 0;
};

}  // namespace sb
