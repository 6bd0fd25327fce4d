// libpq's client API. Only Sources/WalferryPostgres imports this module.
#include <libpq-fe.h>
