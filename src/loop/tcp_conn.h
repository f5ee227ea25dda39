// TcpConn: one TCP stream on a uv loop, with a deadline timer, an Outbox writer and a reader.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/outbox.h"

struct uv_loop_s;
struct sockaddr;

namespace sb {

class ConnListener {
 public:
  virtual ~ConnListener() = default;
  virtual void on_connected() = 0;
  virtual void on_read(std::string_view data) = 0;
  // The stream failed, or the peer closed it (`why` says which); the conn is closing.
  virtual void on_broken(std::string_view why) = 0;
  virtual void on_timer() = 0;
  // Last call: the handles are closed and the TcpConn is about to be freed.
  virtual void on_closed() = 0;
};

// Owns its memory: create() allocates, close() frees after the close callbacks.
class TcpConn {
 public:
  static TcpConn* create(uv_loop_s* loop, ConnListener* listener);
  // Starts a connect; failure to start is reported as on_broken from the loop.
  void connect(const sockaddr* addr);
  // Adopts an accepted server-side stream (used by the sink); reading starts at once.
  // Returns false when accept failed; the conn is then closing.
  bool accept_from(void* server_stream);
  // Queues the outbox's bytes (the outbox is emptied; referenced memory must stay alive
  // until written). Writes what it can at once with writev; the rest asynchronously.
  void write(Outbox& out);
  // Stops reading until resume_read() (server-side backpressure).
  void pause_read();
  void resume_read();
  // Arms the timer for absolute loop time `at_ms`; 0 disarms.
  void set_deadline(uint64_t at_ms);
  // Closes after the pending write is flushed (graceful) or at once. A graceful close waits
  // at most kDrainMs for a peer that stopped reading. Closing with bytes still unsent resets
  // the connection (RST) rather than leaving them to the kernel.
  void close(bool flush_first);
  static constexpr uint64_t kDrainMs = 5000;
  bool closing() const { return closing_; }
  // The last connect or stream error was the local process running out of descriptors
  // (EMFILE/ENFILE), not the peer's doing.
  bool local_resource_error() const { return local_resource_error_; }
  bool write_pending() const { return writing_; }
  uint64_t now_ms() const;
  std::string peer() const;

 private:
  TcpConn(uv_loop_s* loop, ConnListener* listener);
  ~TcpConn();
  void start_write();
  void broken(std::string why);
  void really_close();
  static void on_close_cb(void* handle);

  struct Handles;
  Handles* h_;
  ConnListener* listener_;
  Outbox pending_;   // queued while a write is in flight
  Outbox inflight_;  // owned bytes of the write in flight
  std::vector<char> read_buf_;
  int open_handles_ = 2;
  bool writing_ = false;
  bool closing_ = false;
  bool close_after_write_ = false;
  bool broken_ = false;
  bool reading_ = false;
  bool local_resource_error_ = false;
  uint64_t deadline_ = 0;
  std::string deferred_error_;
};

// Parses "host:port", "[v6]:port" or "v4:port" into a numeric address (no DNS here).
// "connect: too many open files (EMFILE): ..." for a uv error code; EMFILE and ENFILE say
// that the limit is ours (ulimit -n), every other code is uv_strerror's text.
std::string describe_connect_error(int uv_status);

bool parse_socket_address(const std::string& spec, void* sockaddr_storage_out, std::string* error);

}  // namespace sb
