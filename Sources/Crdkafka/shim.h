// librdkafka 2.x (Debian: librdkafka-dev) and its mock cluster API, which ships in the same package.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
