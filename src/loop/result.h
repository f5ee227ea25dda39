// Forwarder: result.h moved to src/base; this goes once every branch includes "base/result.h".
#pragma once

#include "base/result.h"  // IWYU pragma: export
