// DirectLookup moved to the engine (engine/direct_lookup.h); this name stays for the CLI's verbs.
#pragma once

#include "engine/direct_lookup.h"
