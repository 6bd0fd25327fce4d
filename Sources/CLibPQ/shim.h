// libpq's client API. Only Sources/WalferryCore/Postgres imports this module.
#include <libpq-fe.h>
