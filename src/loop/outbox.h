// Forwarder: outbox.h moved to src/base; this goes once every branch includes "base/outbox.h".
#pragma once

#include "base/outbox.h"  // IWYU pragma: export
