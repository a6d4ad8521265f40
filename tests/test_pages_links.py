"""What the app writes into the URL itself is never reported as a bad link; what a link brings is reported as
plain text, once, at full width."""
from tests.test_compare_pages import open_page, qp, seeded  # noqa: F401  (fixture)
from ui.text import JOINER, plain


def test_switching_compare_views_on_the_page_warns_about_nothing(seeded):
    at = open_page("pages/compare.py", view="classes")
    assert qp(at, "task") == "classification" and not at.warning
    for view in ("images", "metrics", "cost", "tables", "classes"):  # each view offers other tasks
        at.selectbox(key="cmp_view").set_value(view).run()
        assert not at.exception, [e.value for e in at.exception]
        assert [w.value for w in at.warning] == [], view
    assert qp(at, "view") == "classes"


def test_a_bad_value_in_an_opened_link_is_reported_once_as_plain_text(seeded):
    bait = "**Session expired** [log in again](https://evil.example/login)"
    at = open_page("pages/compare.py", view="metrics", task=bait)
    [warning] = [w.value for w in at.warning]
    assert r"\*\*Session expired\*\* \[log in again\]\(https\:\/\/" + JOINER + r"evil\.example\/login\)" in warning
    assert qp(at, "task") == "classification"  # the default (first task) took its place
    at.selectbox(key="cmpm_task").set_value("detection").run()
    assert not at.warning  # reported once, for the link, not at every click


def test_plain_escapes_every_markdown_construct():
    text = "**b** _i_ `c` [l](http://x) <b>h</b> :red[r] :material/home: $x$ # h\n- item\\ www.x.org ~~s~~ |t|"
    escaped = plain(text)
    assert "\n" not in escaped
    unescaped = escaped.replace(JOINER, "").replace("\\", "\x00").replace("\x00\x00", "\\").replace("\x00", "")
    assert unescaped == text.replace("\n", " ")  # removing the escapes gives back the text
    assert all(escaped[i - 1] == "\\" for i, ch in enumerate(escaped) if ch in "*_`[]()<>:$#-~|")
    assert plain("x" * 100, 10) == "x" * 9 + "…"


def test_link_warnings_read_the_same_for_any_label_and_escape_markdown(db_url):
    from tests.test_compare_pages import open_page as open_

    at = open_("pages/compare.py", view="**bold** [x](https://e.example)")
    [warning] = [w.value for w in at.warning]
    assert warning.startswith(r"View in this link: “\*\*bold\*\* \[x\]\(https\:\/\/")
    assert warning.endswith("”. Not among the choices here (not in the store, or not shown by this view), so the "
                            "default is shown instead.")


def test_the_dataset_uploader_states_the_archive_limit(db_url, settings_env):
    from tests.test_compare_pages import open_page as open_

    settings_env(IMGLAB_MAX_DATASET_MB=50)
    at = open_("pages/benchmark.py")
    [uploader] = at.get("file_uploader")
    assert uploader.proto.max_upload_size_mb == 50  # the archive limit the server enforces, not the 200 MB default
