/*
 * store14.h - the storage contract of ABI 1.4 (carechat/storage.h's
 * "Since ABI 1.4" sentences), one case a function, for any storage
 * plugin: priority, profile owners and names, read and delivered marks,
 * notification episodes and their claims, tickets.  Each case makes its
 * own profiles and chats (ids of group 0x14gg....), on a database the
 * other cases share, and leaves no notification due behind it (claims
 * see every chat).
 *
 * Header-only, after storetest.h.  run_store14() runs them all.
 */
#ifndef CC_STORE14_H
#define CC_STORE14_H

#include <inttypes.h>

/* Times of case g: far apart, so no case's due times meet another's. */
#define T14(g) ((int64_t)2000000000000000LL + (int64_t)(g) * 1000000000LL)
#define SEC14 1000000LL
#define LEASE14 (30 * SEC14)

/* The case's patient, professional and chat, the chat opened. */
struct chat14 {
    char pat[37], pro[37], chat[37];
    unsigned g, k, n;       /* group, chat of the group, messages */
};

static void open14(struct chat14 *c, unsigned g, unsigned k)
{
    struct outcome o = { 0 };
    char user[32];

    memset(c, 0, sizeof *c);
    c->g = g;
    c->k = k;
    make_id(c->pat, 0x14000000u + g * 0x100 + k, 1);
    make_id(c->pro, 0x14000000u + g * 0x100 + k, 2);
    make_id(c->chat, 0x14000000u + g * 0x100 + k, 3);
    snprintf(user, sizeof user, "user-p-%x-%x", g, k);
    profile_put(&o, CC_SIDE_PATIENT, c->pat, user);
    snprintf(user, sizeof user, "user-r-%x-%x", g, k);
    profile_put(&o, CC_SIDE_PROFESSIONAL, c->pro, user);
    if (chat_open(&o, c->chat, c->pat, c->pro, T14(g)) != CC_OK)
        printf("# chat %x/%x not opened: %d\n", g, k, o.status);
    outcome_free(&o);
}

/* Append by side to c at t; its id into id (may be NULL).  Returns the
 * status. */
static int say14(struct chat14 *c, int32_t side, int32_t prio, int64_t t,
                 int64_t due, char id[37])
{
    struct outcome o = { 0 };
    char mine[37];
    int rc;

    make_id(mine, 0x14100000u + c->g * 0x100 + c->k, ++c->n);
    rc = append14(&o, mine, c->chat,
                  side == CC_SIDE_PATIENT ? c->pat : c->pro, side,
                  prio ? "urgent" : "normal", t, prio, due);
    if (id)
        memcpy(id, mine, 37);
    outcome_free(&o);
    return rc;
}

/* The seq of message id in c's history, 0 when "(null)", -1 absent. */
static int64_t seq14(const struct outcome *h, const char *id)
{
    if (strcmp(id, "(null)") == 0)
        return 0;
    for (size_t i = 0; i < h->n_messages; i++)
        if (strcmp(h->messages[i].id, id) == 0)
            return h->messages[i].seq;
    return -1;
}

/* Marks, is_read and unread_count agree: each message is read exactly
 * when the other side's read mark is at or after it, each side's unread
 * count (chat_get and chat_list) is the other party's messages it has
 * not read, and DELIVERED is never behind READ. */
static void agree14(const struct chat14 *c, const char *what)
{
    struct outcome h = { 0 }, o = { 0 };
    int64_t unread[3] = { 0, 0, 0 }, mark[3] = { 0, 0, 0 };
    int bad = 0;

    message_list(&h, c->chat, CC_SIDE_NONE, 0, 0, 1000);
    for (int side = 1; side <= 2; side++) {
        const char *viewer = side == 1 ? c->pat : c->pro;
        int64_t dlv;

        chat_get(&o, c->chat, side == 1 ? viewer : NULL,
                 side == 2 ? viewer : NULL);
        if (!o.chat) {
            bad++;
            continue;
        }
        mark[side] = seq14(&h, o.chat->read[side]);
        dlv = seq14(&h, o.chat->dlv[side]);
        unread[side] = o.chat->unread_count;
        bad += mark[side] < 0 || dlv < mark[side];
        chat_list(&o, side == 1 ? viewer : NULL, side == 2 ? viewer : NULL,
                  0, NULL, 10);
        bad += o.n_chats != 1 || o.chats[0].unread_count != unread[side];
    }
    for (size_t i = 0; i < h.n_messages; i++) {
        const struct mcopy *m = &h.messages[i];
        int reader = 3 - m->sender_type;
        int read = m->seq <= mark[reader];

        bad += m->is_read != read;
        unread[reader] -= !read;
    }
    bad += unread[1] != 0 || unread[2] != 0;
    if (!ok(bad == 0, "%s: marks, is_read and unread counts agree", what))
        printf("#   %d wrong, unread left %" PRId64 " %" PRId64 "\n", bad,
               unread[1], unread[2]);
    outcome_free(&h);
    outcome_free(&o);
}

/* ------------------------------------------------------ the cases */

/* Priority: stored on append, returned with the append, in history and
 * as a chat's last message; anything but normal or urgent refused. */
static void c14_priority(void)
{
    struct chat14 c;
    struct outcome o = { 0 };
    char id[37];

    open14(&c, 1, 0);
    make_id(id, 0x14010000u, 1);
    is_int(append14(&o, id, c.chat, c.pat, CC_SIDE_PATIENT, "n", T14(1), 0,
                    0), CC_OK, "priority: normal append");
    is_int(o.message ? o.message->priority : -1, CC_PRIORITY_NORMAL,
           "priority: the append's result says normal");
    make_id(id, 0x14010000u, 2);
    is_int(append14(&o, id, c.chat, c.pro, CC_SIDE_PROFESSIONAL, "u",
                    T14(1) + 1, CC_PRIORITY_URGENT, 0), CC_OK,
           "priority: urgent append");
    is_int(o.message ? o.message->priority : -1, CC_PRIORITY_URGENT,
           "priority: the append's result says urgent");
    message_list(&o, c.chat, CC_SIDE_PATIENT, 0, 0, 10);
    ok(o.n_messages == 2 && o.messages[0].priority == 0 &&
       o.messages[1].priority == 1, "priority: history keeps both");
    chat_get(&o, c.chat, c.pat, NULL);
    is_int(o.chat && o.chat->has_last ? o.chat->last.priority : -1, 1,
           "priority: the chat's last message is urgent");
    chat_list(&o, c.pat, NULL, 0, NULL, 10);
    is_int(o.n_chats ? o.chats[0].last.priority : -1, 1,
           "priority: so is the listed chat's");
    make_id(id, 0x14010000u, 3);
    is_int(append14(&o, id, c.chat, c.pat, CC_SIDE_PATIENT, "x", T14(1), 2,
                    0), CC_E_INVAL, "priority: 2 is refused");
    outcome_free(&o);
}

/* Owners: the first user who presents a profile owns it; later ones do
 * not change it; only profile_owner_set does (creating the profile).
 * Names: set, shown in chats, removed, too long refused. */
static void c14_owners(void)
{
    struct outcome o = { 0 };
    char p1[37], p2[37], p3[37], long_name[202];
    struct chat14 c;

    make_id(p1, 0x14020000u, 1);
    make_id(p2, 0x14020000u, 2);
    make_id(p3, 0x14020000u, 3);
    profile_put(&o, CC_SIDE_PATIENT, p1, "alice");
    is_str(o.owner, "alice", "owners: the first presenter owns it");
    is_int(profile_put(&o, CC_SIDE_PATIENT, p1, "mallory"), CC_OK,
           "owners: another user's put is answered");
    is_str(o.owner, "alice", "owners: and says the profile is alice's");
    profile_get(&o, CC_SIDE_PATIENT, p1);
    is_str(o.owner, "alice", "owners: profile_get says alice");
    profile_put(&o, CC_SIDE_PATIENT, p2, NULL);
    is_str(o.owner, "(null)", "owners: registered without an owner");
    profile_put(&o, CC_SIDE_PATIENT, p2, "bob");
    is_str(o.owner, "bob", "owners: an unowned profile binds to its first "
           "user");
    profile_put(&o, CC_SIDE_PATIENT, p2, NULL);
    is_str(o.owner, "bob", "owners: a put without a user keeps the owner");
    is_int(owner_set(&o, CC_SIDE_PATIENT, p1, "carol"), CC_OK,
           "owners: an admin rebinds");
    is_str(o.owner, "carol", "owners: profile_owner_set answers the owner");
    profile_put(&o, CC_SIDE_PATIENT, p1, "alice");
    is_str(o.owner, "carol", "owners: the old owner is now refused");
    is_int(owner_set(&o, CC_SIDE_PROFESSIONAL, p3, "dave"), CC_OK,
           "owners: profile_owner_set of a missing profile");
    is_int(profile_get(&o, CC_SIDE_PROFESSIONAL, p3), CC_OK,
           "owners: it was created");
    is_str(o.owner, "dave", "owners: bound to the user given");
    is_int(profile_get(&o, CC_SIDE_PATIENT, p3), CC_E_NOTFOUND,
           "owners: of its kind only");

    open14(&c, 2, 1);
    is_int(name_set(&o, CC_SIDE_PATIENT, c.pat, "Al\xc3\xaf" "ce A."), CC_OK,
           "names: set");
    name_set(&o, CC_SIDE_PROFESSIONAL, c.pro, "Dr. B");
    chat_get(&o, c.chat, c.pat, NULL);
    ok(o.chat && strcmp(o.chat->name[1], "Al\xc3\xaf" "ce A.") == 0 &&
       strcmp(o.chat->name[2], "Dr. B") == 0 &&
       strcmp(o.chat->name[0], "(null)") == 0, "names: the chat has both");
    name_set(&o, CC_SIDE_PATIENT, c.pat, "");
    chat_list(&o, NULL, c.pro, 0, NULL, 10);
    ok(o.n_chats == 1 && strcmp(o.chats[0].name[1], "(null)") == 0 &&
       strcmp(o.chats[0].name[2], "Dr. B") == 0,
       "names: \"\" removes one (chat list)");
    memset(long_name, 'n', 201);
    long_name[201] = '\0';
    is_int(name_set(&o, CC_SIDE_PATIENT, c.pat, long_name), CC_E_INVAL,
           "names: 201 bytes refused");
    make_id(p3, 0x14020000u, 4);
    is_int(name_set(&o, CC_SIDE_PATIENT, p3, "New"), CC_OK,
           "names: of a missing profile");
    is_int(profile_get(&o, CC_SIDE_PATIENT, p3), CC_OK,
           "names: it was created");
    is_str(o.owner, "(null)", "names: without an owner");
    outcome_free(&o);
}

/* Marks: forward only, READ moves DELIVERED, counts of the other party's
 * messages newly covered, not found, the newest, the old mark_read. */
static void c14_marks(void)
{
    struct chat14 c, e;
    struct outcome o = { 0 };
    char p1[37], r2[37], r3[37], p4[37], r5[37], other[37];
    const int64_t t = T14(3);

    open14(&c, 3, 0);
    say14(&c, CC_SIDE_PATIENT, 0, t + 1, 0, p1);
    say14(&c, CC_SIDE_PROFESSIONAL, 0, t + 2, 0, r2);
    say14(&c, CC_SIDE_PROFESSIONAL, 0, t + 3, 0, r3);
    say14(&c, CC_SIDE_PATIENT, 0, t + 4, 0, p4);
    say14(&c, CC_SIDE_PROFESSIONAL, 0, t + 5, 0, r5);
    agree14(&c, "marks: none yet");

    is_int(mark_set(&o, c.chat, CC_SIDE_PROFESSIONAL, CC_MARK_DELIVERED, p1,
                    t + 10, 0), CC_OK, "marks: delivered to p1");
    ok(o.has_mark && o.mark.moved == 1 && o.mark.up_to_seq == 1 &&
       o.mark.kind == CC_MARK_DELIVERED &&
       o.mark.side == CC_SIDE_PROFESSIONAL && o.mark.at_us == t + 10 &&
       strcmp(o.mark_id, p1) == 0, "marks: the mark moved to p1");
    is_int(o.count, 1, "marks: delivered covers one of the patient's");
    chat_get(&o, c.chat, NULL, c.pro);
    ok(o.chat && strcmp(o.chat->dlv[2], p1) == 0 &&
       strcmp(o.chat->read[2], "(null)") == 0 &&
       strcmp(o.chat->read[1], "(null)") == 0,
       "marks: the chat has delivered_up_to, no read_up_to");
    is_int(o.chat ? o.chat->unread_count : -1, 2,
           "marks: delivered is not read");

    mark_set(&o, c.chat, CC_SIDE_PATIENT, CC_MARK_READ, r3, t + 20, 0);
    ok(o.has_mark && o.mark.moved && o.mark.up_to_seq == 3 &&
       o.count == 2, "marks: the patient reads to r3: two newly read");
    chat_get(&o, c.chat, c.pat, NULL);
    ok(o.chat && strcmp(o.chat->read[1], r3) == 0 &&
       strcmp(o.chat->dlv[1], r3) == 0,
       "marks: READ moved DELIVERED up to it");
    is_int(o.chat ? o.chat->unread_count : -1, 1,
           "marks: r5 is still unread");
    agree14(&c, "marks: read to r3");

    mark_set(&o, c.chat, CC_SIDE_PATIENT, CC_MARK_READ, r2, t + 30, 0);
    ok(o.has_mark && !o.mark.moved && o.mark.up_to_seq == 3 &&
       strcmp(o.mark_id, r3) == 0 && o.mark.at_us == t + 20 &&
       o.count == 0, "marks: an older id leaves READ where it was");
    mark_set(&o, c.chat, CC_SIDE_PATIENT, CC_MARK_DELIVERED, r2, t + 30, 0);
    ok(o.has_mark && !o.mark.moved && o.mark.up_to_seq == 3,
       "marks: so does DELIVERED");
    mark_set(&o, c.chat, CC_SIDE_PATIENT, CC_MARK_DELIVERED, r5, t + 40, 0);
    ok(o.mark.moved && o.count == 1 && o.mark.up_to_seq == 5,
       "marks: delivered to r5 moves");
    chat_get(&o, c.chat, c.pat, NULL);
    ok(o.chat && strcmp(o.chat->read[1], r3) == 0 &&
       strcmp(o.chat->dlv[1], r5) == 0 && o.chat->unread_count == 1,
       "marks: delivered does not move READ");
    agree14(&c, "marks: delivered ahead of read");

    mark_set(&o, c.chat, CC_SIDE_PATIENT, CC_MARK_READ, NULL, t + 50, 0);
    ok(o.mark.moved && o.mark.up_to_seq == 5 && o.count == 1 &&
       strcmp(o.mark_id, r5) == 0, "marks: NULL reads to the newest");
    agree14(&c, "marks: the patient read all");
    is_int(mark_read(&o, c.chat, CC_SIDE_PROFESSIONAL), CC_OK,
           "marks: the old mark_read");
    is_int(o.count, 2, "marks: mark_read counts p1 and p4");
    chat_get(&o, c.chat, NULL, c.pro);
    ok(o.chat && strcmp(o.chat->read[2], r5) == 0 &&
       o.chat->unread_count == 0, "marks: mark_read is a READ mark to the "
       "newest");
    agree14(&c, "marks: both read all");

    make_id(other, 0x14039999u, 1);
    is_int(mark_set(&o, c.chat, CC_SIDE_PATIENT, CC_MARK_READ, other, t, 0),
           CC_E_NOTFOUND, "marks: an id not in the chat is not found");
    is_int(mark_set(&o, other, CC_SIDE_PATIENT, CC_MARK_READ, NULL, t, 0),
           CC_E_NOTFOUND, "marks: a chat that is not there");
    open14(&e, 3, 1);
    is_int(mark_set(&o, e.chat, CC_SIDE_PATIENT, CC_MARK_READ, r5, t, 0),
           CC_E_NOTFOUND, "marks: another chat's message is not found");
    is_int(mark_set(&o, e.chat, CC_SIDE_PATIENT, CC_MARK_READ, NULL, t, 0),
           CC_OK, "marks: the newest of a chat without messages");
    ok(!o.has_mark || (!o.mark.moved && !o.mark.up_to_id &&
                       !o.mark.up_to_seq), "marks: nothing moved");
    is_int(mark_set(&o, c.chat, CC_SIDE_PATIENT, 3, NULL, t, 0), CC_E_INVAL,
           "marks: an unknown kind is refused");
    outcome_free(&o);
}

/* One claim at now; the notifications into o.  Returns how many. */
static size_t claim14(struct outcome *o, int64_t now)
{
    notify_claim(o, now, LEASE14, 10);
    return o->n_ntfs;
}

static int is_uuid4(const char *s)
{
    if (strlen(s) != 36 || s[14] != '4' || !strchr("89ab", s[19]))
        return 0;
    for (int i = 0; i < 36; i++)
        if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-'
                                                    : !strchr(
                                                          "0123456789abcdef",
                                                          s[i]))
            return 0;
    return 1;
}

/* Episodes: opened by an append with a due time, claimed when due and
 * leased, RETRY keeps the id, SENT makes the next a new one, an urgent
 * message makes it urgent and due at once, a read ends it and begins a
 * new one for what remains, notify_done after a read is ignored. */
static void c14_episodes(void)
{
    struct chat14 c;
    struct outcome o = { 0 };
    char m1[37], m2[37], m3[37], id1[37] = "", id2[37] = "";
    const int64_t t = T14(4), delay = 60 * SEC14;

    open14(&c, 4, 0);
    say14(&c, CC_SIDE_PATIENT, 0, t, 0, NULL);
    is_int((int)claim14(&o, t + 3600 * SEC14), 0,
           "episodes: an append without a due time opens none");
    say14(&c, CC_SIDE_PROFESSIONAL, 0, t + 1, t + delay, NULL);
    is_int((int)claim14(&o, t + 3600 * SEC14), 1,
           "episodes: one with a due time opens one, for the other party");
    is_int(o.n_ntfs ? o.ntfs[0].side : 0, CC_SIDE_PATIENT,
           "episodes: the patient's");
    mark_read(&o, c.chat, CC_SIDE_PATIENT);
    mark_read(&o, c.chat, CC_SIDE_PROFESSIONAL);
    is_int((int)claim14(&o, t + 3600 * SEC14 + LEASE14), 0,
           "episodes: reading ends it (and the lease with it)");

    say14(&c, CC_SIDE_PATIENT, 0, t + 10, t + 10 + delay, m1);
    is_int((int)claim14(&o, t + 10 + delay - 1), 0,
           "episodes: not handed out before it is due");
    is_int((int)claim14(&o, t + 10 + delay), 1,
           "episodes: handed out when due");
    if (o.n_ntfs == 1) {
        const struct ncopy *n = &o.ntfs[0];
        char user[32];

        snprintf(user, sizeof user, "user-r-%x-%x", 4, 0);
        ok(n->side == CC_SIDE_PROFESSIONAL && !strcmp(n->chat_id, c.chat) &&
           !strcmp(n->profile_id, c.pro) && !strcmp(n->user_id, user),
           "episodes: to the professional, the profile and its owner");
        ok(!strcmp(n->first_unread_id, m1) && n->unread == 1 &&
           !n->urgent && n->episode_at_us == t + 10 && n->attempts == 0 &&
           n->sent == 0, "episodes: first unread, count, times and tries");
        ok(is_uuid4(n->id), "episodes: a new UUIDv4 (%s)", n->id);
        memcpy(id1, n->id, 37);
    }
    is_int((int)claim14(&o, t + 10 + delay + 1), 0,
           "episodes: leased: not handed out again");
    is_int((int)claim14(&o, t + 10 + delay + LEASE14), 1,
           "episodes: handed out again when the lease ends (a node died)");
    is_str(o.n_ntfs ? o.ntfs[0].id : "", id1, "episodes: same id");
    is_int(notify_done(&o, c.chat, CC_SIDE_PROFESSIONAL, id1,
                       CC_NOTIFY_RETRY, t + 200 * SEC14), CC_OK,
           "episodes: RETRY");
    is_int((int)claim14(&o, t + 199 * SEC14), 0,
           "episodes: RETRY: not before next_due");
    is_int((int)claim14(&o, t + 200 * SEC14), 1, "episodes: RETRY: then");
    ok(o.n_ntfs && !strcmp(o.ntfs[0].id, id1) && o.ntfs[0].attempts == 1,
       "episodes: RETRY keeps the id and counts the attempt");
    notify_done(&o, c.chat, CC_SIDE_PROFESSIONAL, id1, CC_NOTIFY_SENT, 0);
    is_int((int)claim14(&o, t + 3600 * SEC14), 0,
           "episodes: SENT with no next: nothing due");
    say14(&c, CC_SIDE_PATIENT, 0, t + 300 * SEC14, t + 400 * SEC14, m2);
    is_int((int)claim14(&o, t + 3600 * SEC14), 0,
           "episodes: a normal message in it changes nothing");
    say14(&c, CC_SIDE_PATIENT, 1, t + 500 * SEC14, t + 500 * SEC14, m3);
    is_int((int)claim14(&o, t + 500 * SEC14), 1,
           "episodes: an urgent one makes it due at once");
    if (o.n_ntfs == 1) {
        const struct ncopy *n = &o.ntfs[0];

        ok(n->urgent && n->unread == 3 && n->sent == 1 &&
           n->attempts == 0 && !strcmp(n->first_unread_id, m1) &&
           n->episode_at_us == t + 10,
           "episodes: urgent, three unread, one sent before");
        ok(is_uuid4(n->id) && strcmp(n->id, id1) != 0,
           "episodes: after SENT the next has a new id");
        memcpy(id2, n->id, 37);
    }
    is_int(notify_done(&o, c.chat, CC_SIDE_PROFESSIONAL, id1,
                       CC_NOTIFY_SENT, 0), CC_OK,
           "episodes: an outcome for an old id is answered");
    is_int((int)claim14(&o, t + 500 * SEC14 + LEASE14), 1,
           "episodes: and ignored (still leased to id2, then due)");
    is_str(o.n_ntfs ? o.ntfs[0].id : "", id2, "episodes: id2 still");

    /* The professional reads m1: a new episode for m2 and m3, at once
     * (m3 is urgent), with a new id; the old one's outcome is ignored. */
    mark_set(&o, c.chat, CC_SIDE_PROFESSIONAL, CC_MARK_READ, m1,
             t + 600 * SEC14, delay);
    is_int(notify_done(&o, c.chat, CC_SIDE_PROFESSIONAL, id2,
                       CC_NOTIFY_SENT, t + 700 * SEC14), CC_OK,
           "episodes: notify_done after a read");
    is_int((int)claim14(&o, t + 600 * SEC14), 1,
           "episodes: a read begins a new one for what remains, due now "
           "(urgent)");
    if (o.n_ntfs == 1) {
        const struct ncopy *n = &o.ntfs[0];

        ok(strcmp(n->id, id2) && strcmp(n->id, id1) && n->sent == 0 &&
           n->attempts == 0 && n->urgent && n->unread == 2 &&
           !strcmp(n->first_unread_id, m2) &&
           n->episode_at_us == t + 300 * SEC14,
           "episodes: new id, nothing sent, two unread from m2");
        memcpy(id2, n->id, 37);
    }
    notify_done(&o, c.chat, CC_SIDE_PROFESSIONAL, id2, CC_NOTIFY_SENT, 0);
    mark_set(&o, c.chat, CC_SIDE_PROFESSIONAL, CC_MARK_READ, NULL,
             t + 700 * SEC14, delay);
    is_int((int)claim14(&o, t + 9000 * SEC14), 0,
           "episodes: reading everything ends it for good");
    agree14(&c, "episodes");
    outcome_free(&o);
}

/* A read that leaves normal messages unread: due delay after the oldest
 * of them; delay 0: none.  DROP: nothing due until they read.  An urgent
 * message while one is handed out is not lost by its SENT. */
static void c14_reopen(void)
{
    struct chat14 c;
    struct outcome o = { 0 };
    char m1[37], id[37] = "";
    const int64_t t = T14(5), delay = 60 * SEC14;

    open14(&c, 5, 0);
    say14(&c, CC_SIDE_PROFESSIONAL, 0, t, t + delay, m1);
    say14(&c, CC_SIDE_PROFESSIONAL, 0, t + 5 * SEC14, t + delay, NULL);
    mark_set(&o, c.chat, CC_SIDE_PATIENT, CC_MARK_READ, m1, t + SEC14,
             delay);
    is_int((int)claim14(&o, t + 5 * SEC14 + delay - 1), 0,
           "reopen: not before delay after the oldest unread");
    is_int((int)claim14(&o, t + 5 * SEC14 + delay), 1,
           "reopen: then, to the patient");
    ok(o.n_ntfs && o.ntfs[0].side == CC_SIDE_PATIENT &&
       o.ntfs[0].unread == 1 && !o.ntfs[0].urgent,
       "reopen: one unread, normal");
    if (o.n_ntfs)
        memcpy(id, o.ntfs[0].id, 37);
    /* An urgent message while it is handed out. */
    say14(&c, CC_SIDE_PROFESSIONAL, 1, t + 70 * SEC14, t + 70 * SEC14,
          NULL);
    is_int((int)claim14(&o, t + 70 * SEC14), 0,
           "reopen: leased: an urgent message does not hand it out twice");
    notify_done(&o, c.chat, CC_SIDE_PATIENT, id, CC_NOTIFY_SENT, 0);
    is_int((int)claim14(&o, t + 70 * SEC14), 1,
           "reopen: an urgent message during the lease is still due after "
           "SENT");
    ok(o.n_ntfs && o.ntfs[0].urgent && o.ntfs[0].sent == 1,
       "reopen: urgent, one sent");
    if (o.n_ntfs) {
        memcpy(id, o.ntfs[0].id, 37);
        notify_done(&o, c.chat, CC_SIDE_PATIENT, id, CC_NOTIFY_DROP, 0);
    }
    say14(&c, CC_SIDE_PROFESSIONAL, 0, t + 80 * SEC14, t + 90 * SEC14,
          NULL);
    is_int((int)claim14(&o, t + 9000 * SEC14), 0,
           "reopen: DROP: nothing due, a normal message changes nothing");
    mark_set(&o, c.chat, CC_SIDE_PATIENT, CC_MARK_READ, m1, t, delay);
    is_int((int)claim14(&o, t + 9000 * SEC14), 0,
           "reopen: a read that moves nothing ends nothing");
    mark_set(&o, c.chat, CC_SIDE_PATIENT, CC_MARK_DELIVERED, NULL, t, delay);
    is_int((int)claim14(&o, t + 9000 * SEC14), 0,
           "reopen: neither does DELIVERED");
    say14(&c, CC_SIDE_PATIENT, 0, t + 90 * SEC14, 0, NULL);
    mark_set(&o, c.chat, CC_SIDE_PATIENT, CC_MARK_READ, NULL,
             t + 95 * SEC14, 0);
    is_int((int)claim14(&o, t + 9000 * SEC14), 0,
           "reopen: a read with delay 0 begins none");
    agree14(&c, "reopen");
    outcome_free(&o);
}

/* Claims: oldest due first, at most limit; the rest on the next. */
static void c14_claim_order(void)
{
    struct chat14 c[3];
    struct outcome o = { 0 };
    const int64_t t = T14(6);
    const int64_t due[3] = { t + 3, t + 1, t + 2 };

    for (int i = 0; i < 3; i++) {
        open14(&c[i], 6, (unsigned)i);
        say14(&c[i], CC_SIDE_PATIENT, 0, t, due[i], NULL);
    }
    notify_claim(&o, t + 10, LEASE14, 2);
    ok(o.n_ntfs == 2 && !strcmp(o.ntfs[0].chat_id, c[1].chat) &&
       !strcmp(o.ntfs[1].chat_id, c[2].chat),
       "claims: limit 2, the oldest due first");
    notify_claim(&o, t + 10, LEASE14, 2);
    ok(o.n_ntfs == 1 && !strcmp(o.ntfs[0].chat_id, c[0].chat),
       "claims: the next claim has the third");
    is_int(notify_claim(&o, t, LEASE14, 0), CC_E_INVAL,
           "claims: limit 0 refused");
    for (int i = 0; i < 3; i++)
        mark_read(&o, c[i].chat, CC_SIDE_PROFESSIONAL);
    is_int((int)claim14(&o, t + 9000 * SEC14), 0, "claims: all read");
    outcome_free(&o);
}

/* Appends queued at once (they share a group: SQLite's writer and
 * PostgreSQL's pipeline take them together) to chat c by side: prio[i]
 * and due[i] each; waits for all.  Returns how many failed. */
static int burst14(struct chat14 *c, int32_t side, int n,
                   const int32_t *prio, const int64_t *due, int64_t t)
{
    struct outcome o[16];
    int failed = 0;

    memset(o, 0, sizeof o);
    for (int i = 0; i < n && i < 16; i++) {
        char id[37];
        struct cc_message m = {
            .struct_size = sizeof m, .id = id, .chat_id = c->chat,
            .sender_id = side == CC_SIDE_PATIENT ? c->pat : c->pro,
            .content = "burst", .content_len = 5, .created_at_us = t + i,
            .sender_type = side, .priority = prio[i],
            .notify_due_us = due ? due[i] : 0,
        };

        make_id(id, 0x14200000u + c->g * 0x100 + c->k, ++c->n);
        begin(&o[i]);
        o[i].queued = api->message_append(inst, &m, store_cb, &o[i]);
        in_api = 0;
    }
    for (int i = 0; i < n && i < 16; i++) {
        if (o[i].queued != CC_OK ||
            pt_run_until(&env, &o[i].done, 10000) < 0 ||
            o[i].status != CC_OK)
            failed++;
        outcome_free(&o[i]);
    }
    return failed;
}

/* Bursts: priorities and due times of appends that share a group.  The
 * first due time opens the episode, an urgent one makes it due no later
 * than its own. */
static void c14_burst(void)
{
    struct chat14 c[3];
    struct outcome o = { 0 };
    const int64_t t = T14(8);
    static const int32_t prio[6] = { 0, 1, 0, 1, 1, 0 };
    static const int32_t normal[3] = { 0, 0, 0 }, late[3] = { 0, 0, 1 };
    static const int32_t early[2] = { 0, 1 };
    const int64_t due1[3] = { t + 100, t + 50, t + 200 };
    const int64_t due2[2] = { t + 100, t + 60 };
    char id[37] = "";
    int bad = 0;

    for (int i = 0; i < 3; i++)
        open14(&c[i], 8, (unsigned)i);
    is_int(burst14(&c[0], CC_SIDE_PATIENT, 6, prio, NULL, t), 0,
           "burst: six appends at once");
    message_list(&o, c[0].chat, CC_SIDE_PATIENT, 0, 0, 10);
    for (size_t i = 0; i < o.n_messages; i++)
        bad += o.messages[i].priority != prio[i];
    ok(o.n_messages == 6 && bad == 0, "burst: each keeps its priority");
    burst14(&c[1], CC_SIDE_PATIENT, 3, normal, due1, t);
    burst14(&c[2], CC_SIDE_PROFESSIONAL, 2, early, due2, t);
    is_int((int)claim14(&o, t + 59), 0, "burst: nothing due before t+60");
    is_int((int)claim14(&o, t + 60), 1,
           "burst: an urgent one makes it due no later than its own");
    ok(o.n_ntfs && !strcmp(o.ntfs[0].chat_id, c[2].chat) &&
       o.ntfs[0].urgent && o.ntfs[0].side == CC_SIDE_PATIENT &&
       o.ntfs[0].unread == 2, "burst: the urgent one's, to the patient");
    if (o.n_ntfs)
        memcpy(id, o.ntfs[0].id, 37);
    notify_done(&o, c[2].chat, CC_SIDE_PATIENT, id, CC_NOTIFY_SENT, 0);
    is_int((int)claim14(&o, t + 99), 0,
           "burst: the first due time opens the other (not the earlier "
           "one after it)");
    is_int((int)claim14(&o, t + 100), 1, "burst: then it is due");
    ok(o.n_ntfs && !o.ntfs[0].urgent && o.ntfs[0].unread == 3,
       "burst: normal, three unread");
    if (o.n_ntfs)
        memcpy(id, o.ntfs[0].id, 37);
    notify_done(&o, c[1].chat, CC_SIDE_PROFESSIONAL, id, CC_NOTIFY_SENT, 0);
    burst14(&c[1], CC_SIDE_PATIENT, 3, late, due1, t + 10);
    is_int((int)claim14(&o, t + 199), 0, "burst: sent, nothing due");
    is_int((int)claim14(&o, t + 200), 1,
           "burst: an urgent one in an open episode makes it due");
    ok(o.n_ntfs && o.ntfs[0].urgent && o.ntfs[0].unread == 6,
       "burst: makes it urgent");
    for (int i = 0; i < 3; i++) {
        mark_read(&o, c[i].chat, CC_SIDE_PATIENT);
        mark_read(&o, c[i].chat, CC_SIDE_PROFESSIONAL);
    }
    is_int((int)claim14(&o, t + 9000 * SEC14), 0, "burst: all read");
    outcome_free(&o);
}

/* An append, a read and an append queued at once (one group): the read
 * ends the first message's episode, the second append opens a new one,
 * and the counts follow. */
static void c14_group(void)
{
    struct chat14 c;
    struct outcome o[3], q = { 0 };
    const int64_t t = T14(9);
    char id[2][37];
    struct cc_mark_req m = {
        .struct_size = sizeof m, .side = CC_SIDE_PROFESSIONAL,
        .kind = CC_MARK_READ, .at_us = t + 5, .notify_delay_us = 60,
    };
    int failed = 0;

    open14(&c, 9, 0);
    memset(o, 0, sizeof o);
    m.chat_id = c.chat;
    for (int i = 0; i < 3; i++) {
        struct cc_message a = {
            .struct_size = sizeof a, .id = id[i / 2], .chat_id = c.chat,
            .sender_id = c.pat, .content = "g", .content_len = 1,
            .created_at_us = t + i, .sender_type = CC_SIDE_PATIENT,
            .notify_due_us = t + 100 + i,
        };

        begin(&o[i]);
        if (i == 1) {
            o[i].queued = api->mark_set(inst, &m, store_cb, &o[i]);
            continue;
        }
        make_id(id[i / 2], 0x14300000u, (unsigned)i);
        o[i].queued = api->message_append(inst, &a, store_cb, &o[i]);
    }
    in_api = 0;
    for (int i = 0; i < 3; i++)
        failed += o[i].queued != CC_OK ||
                  pt_run_until(&env, &o[i].done, 10000) < 0 ||
                  o[i].status != CC_OK;
    is_int(failed, 0, "group: append, read, append at once");
    is_int(o[1].count, 1, "group: the read covered the first append");
    is_int((int)claim14(&q, t + 102), 1,
           "group: the second append opened a new episode");
    ok(q.n_ntfs && q.ntfs[0].unread == 1 &&
       !strcmp(q.ntfs[0].first_unread_id, id[1]),
       "group: one unread, the second append");
    mark_read(&q, c.chat, CC_SIDE_PROFESSIONAL);
    agree14(&c, "group");
    for (int i = 0; i < 3; i++)
        outcome_free(&o[i]);
    outcome_free(&q);
}

/* Tickets: kept, taken once, not after they expire. */
static void c14_tickets(void)
{
    struct outcome o = { 0 };
    const int64_t t = T14(7);
    char pat[37];
    struct cc_ticket k = {
        .struct_size = sizeof k, .id = "0123456789abcdef0123456789abcdef"
                                       "0123456789abcdef0123456789abcdef",
        .user_id = "ticket-user", .patient_id = pat,
        .professional_id = NULL, .is_admin = 1,
        .token_expires_at = t / SEC14 + 3600, .expires_at_us = t + 30 * SEC14,
    };

    make_id(pat, 0x14070000u, 1);
    is_int(ticket_put(&o, &k), CC_OK, "tickets: kept");
    is_int(ticket_take(&o, k.id, t + SEC14), CC_OK, "tickets: taken");
    ok(o.has_ticket && !strcmp(o.tk_id, k.id) &&
       !strcmp(o.tk_user, "ticket-user") && !strcmp(o.tk_pat, pat) &&
       !strcmp(o.tk_pro, "(null)") && o.ticket.is_admin == 1 &&
       o.ticket.token_expires_at == k.token_expires_at &&
       o.ticket.expires_at_us == k.expires_at_us,
       "tickets: every field comes back");
    is_int(ticket_take(&o, k.id, t + SEC14), CC_E_NOTFOUND,
           "tickets: taken once only");
    k.id = "abc1";
    ticket_put(&o, &k);
    is_int(ticket_take(&o, k.id, t + 31 * SEC14), CC_E_NOTFOUND,
           "tickets: not after it expired");
    is_int(ticket_take(&o, "abc2", t), CC_E_NOTFOUND,
           "tickets: one never kept");
    k.id = "ABC";
    is_int(ticket_put(&o, &k), CC_E_INVAL, "tickets: not lower-case hex");
    outcome_free(&o);
}

/* After a migration of the data set both plugins' migration tests make
 * (chat with the patient's m1, m2, the professional's m3, m4, the
 * patient's m5, m6 = ids a0000000-0000-4000-8000-00000000000N; m1 to m3
 * read; the patient owned by u-pat, the professional by none): each
 * side's READ and DELIVERED marks are the newest message of the other
 * party it had read, unread counts and is_read follow from them, owners
 * stay, priorities are normal; then marks move on. */
static void migrated14(const char *pat, const char *pro, const char *chat,
                       const char *what)
{
    struct outcome o = { 0 };
    struct chat14 c = { .g = 0 };

    chat_get(&o, chat, pat, NULL);
    ok(o.chat && !strcmp(o.chat->read[1], "a0000000-0000-4000-8000-"
                         "000000000003") &&
       !strcmp(o.chat->dlv[1], o.chat->read[1]) &&
       !strcmp(o.chat->read[2], "a0000000-0000-4000-8000-000000000002") &&
       !strcmp(o.chat->dlv[2], o.chat->read[2]),
       "%s: marks from is_read: the patient read r3, the professional p2",
       what);
    is_int(o.chat ? (int)o.chat->unread_count : -1, 1,
           "%s: the patient has r4 unread", what);
    chat_get(&o, chat, NULL, pro);
    is_int(o.chat ? (int)o.chat->unread_count : -1, 2,
           "%s: the professional has p5 and p6 unread", what);
    message_list(&o, chat, CC_SIDE_NONE, 0, 0, 10);
    ok(o.n_messages == 6 && o.messages[2].is_read && !o.messages[3].is_read
       && o.messages[1].is_read && !o.messages[4].is_read &&
       o.messages[5].priority == 0, "%s: is_read as before, priorities "
       "normal", what);
    memcpy(c.chat, chat, 37);
    memcpy(c.pat, pat, 37);
    memcpy(c.pro, pro, 37);
    agree14(&c, what);
    profile_get(&o, CC_SIDE_PATIENT, pat);
    is_str(o.owner, "u-pat", "%s: the owner stays", what);
    profile_put(&o, CC_SIDE_PROFESSIONAL, pro, "u-pro");
    is_str(o.owner, "u-pro", "%s: an unowned profile binds", what);
    mark_set(&o, chat, CC_SIDE_PATIENT, CC_MARK_READ, NULL, 9, 0);
    ok(o.count == 1 && o.mark.up_to_seq == 6, "%s: the patient reads r4",
       what);
    agree14(&c, "migrated, read on");
    outcome_free(&o);
}

/* A reader who marks each message as it arrives while the other side
 * writes on (a ward's busy chat, carechat-bench --receipts): each READ
 * and DELIVERED covers one message with many after it, and the counts
 * stay true (storage-sqlite counts the shorter span: this case takes
 * that path, c14_marks the other). */
static void c14_follow(void)
{
    struct chat14 c;
    struct outcome o = { 0 };
    char id[12][37], mine[37];
    const int64_t t = T14(10);
    int bad = 0;

    open14(&c, 10, 0);
    for (int i = 0; i < 12; i++) {
        say14(&c, CC_SIDE_PATIENT, 0, t + i, 0, id[i]);
        if (i % 4 == 3)
            say14(&c, CC_SIDE_PROFESSIONAL, 0, t + i, 0, mine);
    }
    for (int i = 0; i < 10; i++) {
        mark_set(&o, c.chat, CC_SIDE_PROFESSIONAL, CC_MARK_DELIVERED, id[i],
                 t + 100 + i, 0);
        bad += !o.has_mark || !o.mark.moved || o.count != 1;
        mark_set(&o, c.chat, CC_SIDE_PROFESSIONAL, CC_MARK_READ, id[i],
                 t + 100 + i, 0);
        bad += !o.has_mark || !o.mark.moved || o.count != 1;
        chat_get(&o, c.chat, NULL, c.pro);
        bad += !o.chat || o.chat->unread_count != 11 - i;
    }
    is_int(bad, 0, "follow: each mark covers one, unread counts down to 2");
    agree14(&c, "follow: read one by one");
    mark_set(&o, c.chat, CC_SIDE_PATIENT, CC_MARK_READ, id[4], t + 200, 0);
    is_int(o.count, 1, "follow: the patient reads the first reply");
    agree14(&c, "follow: both read some");
    outcome_free(&o);
}

static void run_store14(void)
{
    c14_priority();
    c14_owners();
    c14_marks();
    c14_episodes();
    c14_reopen();
    c14_claim_order();
    c14_burst();
    c14_group();
    c14_follow();
    c14_tickets();
}

#endif
