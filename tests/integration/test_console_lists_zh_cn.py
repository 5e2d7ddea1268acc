"""The lists' new pages in Chinese: filters, pager, exports, bulk review and outcome, errors."""

from __future__ import annotations

import re

from flask import Flask

from tests.integration.test_console_bulk import bind_many
from tests.integration.test_console_lists import add_bindings
from tests.integration.test_console_zh_cn import assert_chinese, signed_in

REASON_ZH = "承运商整条线路延误"


def test_the_lists_and_bulk_pages_are_in_chinese(app: Flask) -> None:
    add_bindings(app, 60)
    # Owner names are ids (the pool page lists them), as API keys' owners are.
    views = bind_many(app, 2, owner="shop_a")
    operator = signed_in(app, "ops_li", "operator")
    pages = {
        "search, page 1": operator.text("/admin/bindings?q=SO2026"),
        "interactions, filtered": operator.text("/admin/interactions?outcome=completed&since=2026-11-01"),
        "audit, filtered": operator.text(f"/admin/audit?actor=admin:&subject={views[0].id}"),
        "alerts, filtered": operator.text("/admin/alerts?state=open"),
        "pool, filtered": operator.text("/admin/pool?status=active"),
    }
    older = re.search(r'rel="next" href="([^"]+)"', pages["search, page 1"]).group(1).replace("&amp;", "&")
    pages["search, page 2"] = operator.text(older)
    assert "共 62 条" in pages["search, page 1"]
    bad = operator.get("/admin/audit?since=last-week")
    assert bad.status_code == 400
    pages["bad filter"] = bad.get_data(as_text=True)
    assert "起始时间" in pages["bad filter"]
    form = {"action": "extend", "hours": "24", "reason": REASON_ZH, "csrf_token": operator.csrf()}
    review = operator.client.post(
        "/admin/bindings/bulk",
        data={**form, "ids": [v.id for v in views]},
        base_url="https://localhost",
        headers={"Referer": "https://localhost/admin/"},
    )
    pages["bulk review"] = review.get_data(as_text=True)
    assert "→" in pages["bulk review"]
    unbind = {"action": "unbind", "reason": REASON_ZH, "ids": views[0].id}
    pages["bulk outcome"] = operator.post("/admin/bindings/bulk/apply", unbind).get_data(as_text=True)
    assert "已解绑 1 个绑定中的 1 个。" in pages["bulk outcome"]
    for where, html in pages.items():
        assert_chinese(html, where)
    header = operator.get("/admin/bindings.csv?q=SO2026").get_data(as_text=True).lstrip("\ufeff")
    assert header.splitlines()[0].startswith("绑定,订单,所属平台")
