// BlockPause is header-only (two branches per message); this unit keeps one .cc per concept.
#include "throttle/block_pause.h"
