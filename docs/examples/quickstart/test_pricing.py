from pricing import quote


def test_small_order():
    assert quote("A-1", 2)["total"] == 20.0


def test_bulk_order_is_cheaper_per_unit():
    small, bulk = quote("A-1", 9), quote("A-1", 12)
    assert bulk["total"] / 12 < small["total"] / 9
