// Worker threads: one uv loop each; the inbox is a mutex-guarded vector woken by uv_async.
#include "loop/worker.h"

#include <uv.h>

namespace sb {

uint64_t loop_now_ms(uv_loop_t* loop) { return uv_now(loop); }

Worker::Worker(int index) : index_(index), loop_(new uv_loop_t), async_(new uv_async_t) {
  uv_loop_init(loop_);
  uv_async_init(loop_, async_, &Worker::on_async);
  async_->data = this;
}

Worker::~Worker() {
  stop_and_join();
  // Every handle is closed by now; run once more so close callbacks finish, then free.
  uv_run(loop_, UV_RUN_DEFAULT);
  uv_loop_close(loop_);
  delete loop_;
  delete async_;
}

void Worker::start() {
  thread_ = std::thread([this] { uv_run(loop_, UV_RUN_DEFAULT); });
}

void Worker::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> g(mu_);
    inbox_.push_back(std::move(fn));
  }
  uv_async_send(async_);
}

void Worker::on_async(uv_async_t* a) { static_cast<Worker*>(a->data)->drain(); }

void Worker::drain() {
  {
    std::lock_guard<std::mutex> g(mu_);
    running_.swap(inbox_);
  }
  for (auto& fn : running_) fn();
  running_.clear();
  if (stopping_) {
    // Owners closed their handles in the closures above; anything left is closed here so
    // the loop can end.
    uv_walk(
        loop_,
        [](uv_handle_t* h, void*) {
          if (!uv_is_closing(h)) uv_close(h, nullptr);
        },
        nullptr);
  }
}

void Worker::stop_and_join() {
  if (!thread_.joinable()) return;
  post([this] { stopping_ = true; });
  thread_.join();
}

}  // namespace sb
