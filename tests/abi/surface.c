/*
 * surface.c - every public ABI type reachable from one exported function,
 * so abidw can record the layout of the whole plugin ABI and abidiff can
 * compare it with the baseline of the last release (tests/abi/check.sh).
 */
#include <carechat/auth.h>
#include <carechat/fanout.h>
#include <carechat/storage.h>

CC_PLUGIN_EXPORT void cc_abi_surface(const struct cc_host_api *host,
                                     const struct cc_plugin *plugin,
                                     const struct cc_storage_api *storage,
                                     const struct cc_auth_api *auth,
                                     const struct cc_fanout_api *fanout,
                                     const struct cc_store_result *result,
                                     const struct cc_chat_query *chats,
                                     const struct cc_message_query *msgs,
                                     const struct cc_auth_input *input);

void cc_abi_surface(const struct cc_host_api *host,
                    const struct cc_plugin *plugin,
                    const struct cc_storage_api *storage,
                    const struct cc_auth_api *auth,
                    const struct cc_fanout_api *fanout,
                    const struct cc_store_result *result,
                    const struct cc_chat_query *chats,
                    const struct cc_message_query *msgs,
                    const struct cc_auth_input *input)
{
}
