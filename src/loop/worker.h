// Worker: a thread running its own libuv loop, with a thread-safe inbox of closures.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

struct uv_loop_s;
struct uv_async_s;

namespace sb {

// Closures cross threads only per batch (recipients, outcomes, stop), never per message,
// so the lock here is off the hot path.
class Worker {
 public:
  explicit Worker(int index);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();
  // Runs fn on the loop thread. Safe from any thread, also before start().
  void post(std::function<void()> fn);
  // Asks the loop to close every handle and return; joins the thread.
  void stop_and_join();
  uv_loop_s* loop() { return loop_; }
  int index() const { return index_; }

 private:
  static void on_async(uv_async_s* a);
  void drain();

  int index_;
  uv_loop_s* loop_;
  uv_async_s* async_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::function<void()>> inbox_;
  std::vector<std::function<void()>> running_;
  bool stopping_ = false;
};

// Milliseconds of the loop's clock (cached per iteration, like uv_now).
uint64_t loop_now_ms(uv_loop_s* loop);

}  // namespace sb
