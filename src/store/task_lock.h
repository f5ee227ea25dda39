// Task lock: one sender per task, held by a lock file next to the task for the life of the process.
#pragma once

#include <string>

#include "loop/result.h"

namespace sb {

// Takes the task's lock file (TASK.lock, holding our PID) for the life of the process, so a
// second sender on the same task stops at once; kill -9 releases it (flock). Returns the fd
// (kept open), or an error that says who holds it ("task T is being sent by process PID").
Result<int> acquire_task_lock(const std::string& task_path);

}  // namespace sb
