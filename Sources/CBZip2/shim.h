// libbz2's low-level stream API. Only Sources/WalferryCore/Compression imports this module.
// Debian's libbz2-dev ships no pkg-config file, so the module map links "bz2" itself.
#include <bzlib.h>
