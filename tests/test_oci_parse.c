/* test_oci_parse.c - what a registry or a user hands the OCI client, parsed
 * without a network: references, WWW-Authenticate challenges, and configs,
 * judged by the same rules as the snapshot file they describe. */
#include "oci/oci.h"
#include "testutil.h"

static const char *golden = "tests/golden/demo.snap";

static void test_references(void **state)
{
    (void)state;
    struct oci_ref r;
    struct sbx_diag d = { 0 };
    assert_int_equal(oci_ref_parse("oci://127.0.0.1:5000/snap/demo:v1", &r, &d), 0);
    assert_string_equal(r.host, "127.0.0.1:5000");
    assert_string_equal(r.repo, "snap/demo");
    assert_string_equal(r.tag, "v1");
    assert_true(r.loopback);
    assert_int_equal(oci_ref_parse("registry.example.com/a/b/c", &r, &d), 0);
    assert_string_equal(r.tag, "latest");
    assert_false(r.loopback);
    const char *dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char text[256];
    snprintf(text, sizeof text, "[::1]:5000/x@%s", dg);
    assert_int_equal(oci_ref_parse(text, &r, &d), 0);
    assert_string_equal(r.digest, dg);
    assert_string_equal(r.tag, "");
    assert_true(r.loopback);
    assert_true(sbx_oci_is_ref("oci://h/r"));
    assert_true(oci_host_loopback("localhost:5000"));
    assert_true(oci_host_loopback("127.1.2.3"));
    assert_false(oci_host_loopback("127.example.com"));
    assert_false(oci_host_loopback("localhost.example.com"));
    assert_false(oci_host_loopback("[::1]x"));
    assert_false(oci_host_loopback("10.0.0.1"));
    assert_false(sbx_oci_is_ref("demo.snap"));
    static const char *bad[] = {
        "", "demo.snap", "host", "/repo:tag", "host/", "host/Repo", "host/repo:", "host/repo:-x",
        "host/a//b", "host/repo@sha256:abc", "host/repo@md5:00", "ho st/repo", "host:/repo",
        "host:123456/repo", "[::1/repo", "host/repo:tag\n", "host/-repo", "host/repo/",
        "host/repo:t:t",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = (struct sbx_diag){ 0 };
        if (oci_ref_parse(bad[i], &r, &d) != SBX_E_INVAL)
            fail_msg("'%s' was accepted", bad[i]);
        tu_assert_contains(d.msg, "'");
    }
    char longref[2048];
    memset(longref, 'a', sizeof longref - 1);
    longref[sizeof longref - 1] = '\0';
    memcpy(longref, "h/", 2);
    assert_int_equal(oci_ref_parse(longref, &r, &d), SBX_E_INVAL);
}

static void test_challenges(void **state)
{
    (void)state;
    struct oci_challenge ch;
    assert_true(oci_challenge_parse("Bearer realm=\"https://auth.example/token\",service="
                                    "\"registry\",scope=\"repository:a/b:pull\"", &ch));
    assert_string_equal(ch.scheme, "Bearer");
    assert_string_equal(ch.realm, "https://auth.example/token");
    assert_string_equal(ch.service, "registry");
    assert_string_equal(ch.scope, "repository:a/b:pull");
    assert_true(oci_challenge_parse("Basic realm=\"a \\\"quoted\\\" realm\"", &ch));
    assert_string_equal(ch.scheme, "Basic");
    assert_string_equal(ch.realm, "a \"quoted\" realm");
    assert_true(oci_challenge_parse("Bearer realm=token-only, service=s", &ch));
    assert_string_equal(ch.realm, "token-only");
    assert_string_equal(ch.service, "s");
    assert_false(oci_challenge_parse("", &ch));
    assert_false(oci_challenge_parse("Bearer realm=\"unterminated", &ch));
    assert_false(oci_challenge_parse("AVeryLongSchemeNameIndeed realm=x", &ch));
    /* a value longer than its field is cut, never overrun */
    char big[4096] = "Bearer realm=\"";
    memset(big + strlen(big), 'x', 3000);
    strcat(big, "\"");
    assert_true(oci_challenge_parse(big, &ch));
    assert_int_equal(strlen(ch.realm), sizeof ch.realm - 1);
}

static char *golden_config(size_t *len)
{
    struct sbx_snapshot *snap = NULL;
    struct sbx_diag d = { 0 };
    SBX_OPTS(sbx_snapshot_open_opts, o, .policy = SBX_VERSION_ABI);
    assert_int_equal(sbx_snapshot_open(golden, &o, &snap, &d), 0);
    char *text = NULL;
    assert_int_equal(oci_config_make(snap, &text, len, &d), 0);
    sbx_snapshot_free(snap);
    return text;
}

/* The config says what the header says, and is judged the same way. */
static void test_config_round_trip(void **state)
{
    (void)state;
    size_t len;
    char *text = golden_config(&len);
    struct sbx_snap_facts f;
    struct sbx_diag d = { 0 }, dfile = { 0 };
    assert_int_equal(oci_config_facts((uint8_t *)text, len, "cfg", &f, &d), 0);
    assert_int_equal(f.format, 2);
    assert_true(f.guest_has_note);
    assert_memory_equal(f.cpu_vendor, "AuthenticAMD", 12);
    struct sbx_snapshot *snap = NULL;
    assert_int_equal(sbx_snapshot_open_header(golden, NULL, &snap, &d), 0);
    for (int p = SBX_VERSION_EXACT; p <= SBX_VERSION_ABI; p++)
        assert_int_equal(sbx_snap_judge(&f, (enum sbx_version_policy)p, true, "cfg", &d),
                         sbx_snapshot_check_compat(snap, (enum sbx_version_policy)p, true, &dfile));
    struct sbx_cpu_facts other = { .vendor = "GenuineIntel" };
    assert_int_equal(sbx_snap_judge_cpu(&f, &other, "cfg", &d), SBX_E_CPU);
    tu_assert_contains(d.msg, "GenuineIntel");
    struct sbx_cpu_facts same = { .vendor = "AuthenticAMD", .features = { ~0u, ~0u, ~0u, ~0u },
                                  .xcr0_supported = ~0ull };
    assert_int_equal(sbx_snap_judge_cpu(&f, &same, "cfg", &d), 0);
    sbx_snapshot_free(snap);
    free(text);
}

/* Edit the golden config with one substitution and expect it refused. */
static void expect_refused(const char *from, const char *to, const char *field)
{
    size_t len;
    char *text = golden_config(&len);
    char *at = strstr(text, from);
    if (!at)
        fail_msg("'%s' not in the config: %s", from, text);
    size_t n = len - strlen(from) + strlen(to) + 1;
    char *edited = malloc(n);
    assert_non_null(edited);
    snprintf(edited, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    struct sbx_snap_facts f;
    struct sbx_diag d = { 0 };
    if (oci_config_facts((uint8_t *)edited, strlen(edited), "cfg", &f, &d) != SBX_E_REGISTRY)
        fail_msg("accepted: %s", edited);
    tu_assert_contains(d.msg, field);
    free(edited);
    free(text);
}

static void test_config_malformed(void **state)
{
    (void)state;
    expect_refused("\"format\":2", "\"format\":-2", "\"format\"");
    expect_refused("\"format\":2", "\"format\":\"2\"", "\"format\"");
    expect_refused("\"format\":2", "\"format\":4294967296", "\"format\"");
    expect_refused("\"layout_abi\":", "\"layout_abi_\":", "\"layout_abi\"");
    expect_refused("\"vendor\":\"AuthenticAMD\"", "\"vendor\":\"AMD\"", "\"cpu\"");
    expect_refused("\"features\":[1,2,3,4]", "\"features\":[1,2,3]", "\"cpu\"");
    expect_refused("\"features\":[1,2,3,4]", "\"features\":[1,2,3,-4]", "\"cpu\"");
    expect_refused("\"xcr0\":7", "\"xcr0\":-1", "\"cpu\"");
    expect_refused("\"guest\":{", "\"guest\":7,\"x\":{", "\"guest\"");
    expect_refused("\"writer\":{", "\"writer\":{\"version\":\"0123456789012345678901234567890123\",", "JSON");
    expect_refused("{", "[", "JSON");
    expect_refused("\"format\":2", "\"format\":2,\"format\":2", "JSON");
    struct sbx_snap_facts f;
    struct sbx_diag d = { 0 };
    assert_int_equal(oci_config_facts((const uint8_t *)"", 0, "cfg", &f, &d), SBX_E_REGISTRY);
    assert_int_equal(oci_config_facts((const uint8_t *)"\xff\xfe", 2, "cfg", &f, &d),
                     SBX_E_REGISTRY);
}

/* A config of another guest version is refused as its file would be. */
static void test_config_other_guest(void **state)
{
    (void)state;
    size_t len;
    char *text = golden_config(&len);
    char *p = strstr(text, "\"guest\":{\"abi\":");
    assert_non_null(p);
    p = strstr(p, "\"patch\":0");
    assert_non_null(p);
    p[8] = '7';
    struct sbx_snap_facts f;
    struct sbx_diag d = { 0 };
    assert_int_equal(oci_config_facts((uint8_t *)text, len, "cfg", &f, &d), 0);
    assert_int_equal(sbx_snap_judge(&f, SBX_VERSION_EXACT, false, "cfg", &d), SBX_E_VERSION);
    tu_assert_contains(d.msg, "recreate the snapshot");
    assert_int_equal(sbx_snap_judge(&f, SBX_VERSION_RELAXED, false, "cfg", &d), 0);
    free(text);
}

static void test_digests(void **state)
{
    (void)state;
    char dg[SBX_OCI_DIGEST_MAX];
    struct sbx_diag d = { 0 };
    assert_int_equal(oci_digest_mem("", 0, dg, &d), 0);
    assert_string_equal(dg, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_true(oci_digest_valid(dg));
    dg[10] = 'G';
    assert_false(oci_digest_valid(dg));
    assert_false(oci_digest_valid("sha256:"));
    assert_false(oci_digest_valid("sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_references),
        cmocka_unit_test(test_challenges),
        cmocka_unit_test(test_config_round_trip),
        cmocka_unit_test(test_config_malformed),
        cmocka_unit_test(test_config_other_guest),
        cmocka_unit_test(test_digests),
    };
    return cmocka_run_group_tests_name("oci-parsing", tests, NULL, NULL);
}
