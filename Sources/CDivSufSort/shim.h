// libdivsufsort's suffix sorter (Debian's libdivsufsort-dev, MIT licence), for the bzip2 encoder's
// block sort. Only Sources/WalferryCore/Compression imports this module. The header lives under the
// multiarch include folder, which pkg-config names.
#include <divsufsort.h>
