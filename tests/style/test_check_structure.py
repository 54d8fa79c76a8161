"""check_structure.py on synthetic sources: what it counts as a function and its length,
what fools it not, and what it prints and returns for a tree within and beyond the limits.
Run: python tests/style/test_check_structure.py (ctest style.structure.selftest)."""

import contextlib
import io
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_structure as cs  # noqa: E402


def body(n_statements):
    return "".join(f"    x += {k};\n" for k in range(n_statements))


def function(name, lines, head="static int"):
    """A definition of exactly `lines` lines: signature, body, closing brace."""
    assert lines >= 3
    return f"{head} {name}(int x) {{\n{body(lines - 3)}    return x;\n}}\n"


def run(paths, *args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cs.main([*args, *map(str, paths)])
    return rc, out.getvalue()


class Functions(unittest.TestCase):
    def found(self, src):
        return cs.functions(textwrap.dedent(src))

    def test_a_definition_spans_from_its_signature_to_its_closing_brace(self):
        self.assertEqual(self.found(function("f", 10)), [("f", 1, 10)])

    def test_the_comment_above_a_function_is_not_counted(self):
        src = "/* why f exists,\n * on two lines */\n" + function("f", 5)
        self.assertEqual(self.found(src), [("f", 3, 7)])

    def test_a_signature_over_several_lines_counts_from_its_first_line(self):
        src = """\
            #include <stddef.h>

            static inline int
            ss_long_name(const char *a,
                         size_t b) {
                return (int)b + (a != NULL);
            }
            """
        self.assertEqual(self.found(src), [("ss_long_name", 3, 7)])

    def test_braces_in_strings_chars_and_comments_do_not_open_or_close_bodies(self):
        src = """\
            static const char *open_brace = "{", *q = "\\"{";
            static int f(void) {
                char c = '}';  /* } */
                const char *s = "}}} \\" }";  // }
                return c + s[0] + '\\'';
            }
            int g(void) {
                return 0;
            }
            """
        self.assertEqual(self.found(src), [("f", 2, 6), ("g", 7, 9)])

    def test_aggregates_and_initializers_at_file_scope_are_not_functions(self):
        src = """\
            struct point { int x, y; };
            typedef struct { int (*cb)(int); } ops_t;
            enum colour { RED, GREEN };
            static const struct point corners[] = {{0, 0}, {1, 1}};
            static struct point origin = (struct point){0, 0};
            static int h(int (*cb)(int)) {
                struct point p = {1, 2};
                return cb(p.x);
            }
            """
        self.assertEqual(self.found(src), [("h", 6, 9)])

    def test_functions_inside_extern_c_blocks_and_after_attributes_are_found(self):
        src = """\
            #ifdef __cplusplus
            extern "C" {
            #endif
            static inline int one(void) {
                return 1;
            }
            __attribute__((noreturn)) void die(const char *m) __attribute__((cold)) {
                for (;;) {
                }
            }
            #ifdef __cplusplus
            }
            #endif
            """
        self.assertEqual(self.found(src), [("one", 4, 6), ("die", 7, 10)])

    def test_only_the_first_branch_of_a_conditional_signature_opens_a_body(self):
        src = """\
            #if HIREDIS_MAJOR >= 1
            static void *reply_array(const void *t, size_t n) {
            #else
            static void *reply_array(const void *t, int n) {
            #endif
                return (void *)t;
            }
            #define BLOCK(x) \\
                { x; }
            """
        self.assertEqual(self.found(src), [("reply_array", 2, 7)])

    def test_unbalanced_braces_are_an_error(self):
        with self.assertRaises(cs.ParseError):
            cs.functions("static int f(void) {\n    return 0;\n")
        with self.assertRaises(cs.ParseError):
            cs.functions("}\n")


class Limits(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name) / "worker"
        (self.root / "core").mkdir(parents=True)
        (self.root / "daemon").mkdir()

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, rel, text):
        p = self.root / rel
        p.write_text(text, encoding="utf-8")
        return p

    def test_a_tree_within_the_limits_passes(self):
        self.write("core/a.c", function("at_limit", 120) + function("small", 4))
        self.write("core/a.h", "static inline int g(void) {\n    return 0;\n}\n")
        self.write("daemon/b.c", function("big_file", 120) + "\n" * 780)  # 900 lines
        rc, out = run([self.root])
        self.assertEqual(rc, 0, out)
        self.assertIn("3 files within the limits", out)

    def test_every_offender_is_named_with_where_it_starts(self):
        self.write("core/a.c", function("ok", 120) + function("too_long", 121))
        self.write("daemon/b.c", function("f", 5) + "\n" * 896)  # 901 lines
        self.write("daemon/c.h", "// a header\n" + function("in_header", 200, "static inline int"))
        rc, out = run([self.root])
        self.assertEqual(rc, 1, out)
        lines = out.splitlines()
        self.assertIn(f"{self.root}/core/a.c:121: function too_long is 121 lines (limit 120)",
                      lines)
        self.assertIn(f"{self.root}/daemon/b.c: 901 lines (limit 900)", lines)
        self.assertIn(f"{self.root}/daemon/c.h:2: function in_header is 200 lines (limit 120)",
                      lines)
        self.assertNotIn("function ok", out)
        self.assertIn("3 over the limits", out)

    def test_the_limits_can_be_given(self):
        self.write("core/a.c", function("f", 30))
        self.assertEqual(run([self.root], "--max-function", "29")[0], 1)
        self.assertEqual(run([self.root], "--max-file", "29")[0], 1)
        self.assertEqual(run([self.root], "--max-function", "30", "--max-file", "30")[0], 0)

    def test_a_file_it_cannot_read_as_c_fails_the_check(self):
        self.write("core/a.c", "static int f(void) {\n")
        rc, out = run([self.root])
        self.assertEqual(rc, 2, out)
        self.assertIn("a.c: cannot find its functions", out)


if __name__ == "__main__":
    unittest.main()
