/*
 * surface.c - every public ABI type reachable from one exported function,
 * so abidw can record the layout of the whole plugin ABI and abidiff can
 * compare it with the baseline of the last release (tests/abi/check.sh).
 */
#include <carechat/auth.h>
#include <carechat/fanout.h>
#include <carechat/notify.h>
#include <carechat/storage.h>

CC_PLUGIN_EXPORT void cc_abi_surface(const struct cc_host_api *host,
                                     const struct cc_plugin *plugin,
                                     const struct cc_storage_api *storage,
                                     const struct cc_auth_api *auth,
                                     const struct cc_fanout_api *fanout,
                                     const struct cc_store_result *result,
                                     const struct cc_chat_query *chats,
                                     const struct cc_message_query *msgs,
                                     const struct cc_auth_input *input,
                                     const struct cc_notify_api *notify,
                                     const struct cc_notification *ntf,
                                     const struct cc_mark_req *mreq,
                                     const struct cc_mark *mark,
                                     const struct cc_ticket *ticket,
                                     const struct cc_notify_claim *claim,
                                     const struct cc_notify_outcome *out);

void cc_abi_surface(const struct cc_host_api *host,
                    const struct cc_plugin *plugin,
                    const struct cc_storage_api *storage,
                    const struct cc_auth_api *auth,
                    const struct cc_fanout_api *fanout,
                    const struct cc_store_result *result,
                    const struct cc_chat_query *chats,
                    const struct cc_message_query *msgs,
                    const struct cc_auth_input *input,
                    const struct cc_notify_api *notify,
                    const struct cc_notification *ntf,
                    const struct cc_mark_req *mreq,
                    const struct cc_mark *mark,
                    const struct cc_ticket *ticket,
                    const struct cc_notify_claim *claim,
                    const struct cc_notify_outcome *out)
{
}
