// RunWorker: what the coordinator's port drives on each worker loop, whatever the channel (the
// SMTP worker engine, or the SMS worker over SMPP or an HTTP API).
#pragma once

#include "engine/channel.h"

namespace sb {

// Every call runs on the worker's own loop. A worker speaks to the coordinator only through
// its CoordinatorInbox (channel.h), so the coordinator, planner, ledger and journal are the
// same for every channel.
class RunWorker {
 public:
  virtual ~RunWorker() = default;
  virtual void start() = 0;
  virtual void on_command(WorkerCommand cmd) = 0;
  // The run is over: flushes, adds statistics, closes connections.
  virtual void shutdown() = 0;
};

}  // namespace sb
