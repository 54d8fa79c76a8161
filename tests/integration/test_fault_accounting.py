"""The account the fault tests rest on (faults.account) finds what it must: a lost offset, a
record on the wrong output, a duplicate, and an offset committed before its output existed.
Pure computation: no stack needed."""

import faults


def _placed():
    # partition 0: offsets 0..3 (offset 2 malformed); partition 1: offsets 0..1
    p = {(0, o): ("event", f"c{o}") for o in range(4)}
    p[(0, 2)] = ("malformed", "c2")
    p.update({(1, o): ("event", f"d{o}") for o in range(2)})
    return p


def _pred(src, out_partition, out_offset, customer):
    return {"source_partition": src[0], "source_offset": src[1], "_partition": out_partition,
            "_offset": out_offset, "customer_id": customer}


def _dead_letter(src, out_partition, out_offset):
    return {"_partition": out_partition, "_offset": out_offset,
            "_headers": [(faults.CONNECT + "partition", str(src[0]).encode()),
                         (faults.CONNECT + "offset", str(src[1]).encode())]}


def _complete():
    preds = [_pred((0, 0), 0, 0, "c0"), _pred((0, 1), 0, 1, "c1"), _pred((0, 3), 0, 2, "c3"),
             _pred((1, 0), 1, 0, "d0"), _pred((1, 1), 1, 1, "d1")]
    return preds, [_dead_letter((0, 2), 0, 0)]


def test_a_complete_run_accounts_clean():
    preds, dlq = _complete()
    # committed 0:4 and 1:2 once outputs 0:0..2 / 1:0..1 and dead letter 0:0 were written
    samples = [({0: 4, 1: 2}, {"output": {0: 3, 1: 2}, "dlq": {0: 1, 1: 0}})]
    acc = faults.account(_placed(), preds, dlq, samples)
    assert (acc["lost"], acc["duplicates"], acc["committed_before_output"]) == (0, 0, 0)
    assert (acc["records_in"], acc["events"], acc["malformed"]) == (6, 5, 1)
    assert not acc["misrouted"] and not acc["wrong_customer"] and not acc["unknown"]
    faults.assert_nothing_lost(acc)


def test_a_lost_offset_fails_the_account():
    preds, dlq = _complete()
    acc = faults.account(_placed(), preds[:-1], dlq)
    assert acc["lost"] == 1 and acc["lost_examples"] == [(1, 1)]
    try:
        faults.assert_nothing_lost(acc)
    except AssertionError as e:
        assert "without any output" in str(e)
    else:
        raise AssertionError("a lost offset passed")


def test_duplicates_are_counted_per_extra_output():
    preds, dlq = _complete()
    preds += [_pred((0, 1), 0, 5, "c1"), _pred((0, 1), 0, 6, "c1")]
    dlq += [_dead_letter((0, 2), 0, 1)]
    acc = faults.account(_placed(), preds, dlq)
    assert acc["duplicates"] == 3 and acc["duplicated_offsets"] == 2
    faults.assert_nothing_lost(acc)  # duplicates are counted, not failed


def test_wrong_output_and_wrong_customer_are_found():
    preds, dlq = _complete()
    preds[0] = _pred((0, 0), 0, 0, "someone-else")
    preds.append(_pred((0, 2), 0, 3, "c2"))  # a malformed record that was "scored"
    acc = faults.account(_placed(), preds, dlq)
    assert acc["wrong_customer"] == [((0, 0), "someone-else", "c0")]
    assert acc["misrouted"] == [(0, 2)]


def test_an_offset_committed_before_its_output_was_written_is_found():
    preds, dlq = _complete()
    # the sample saw partition 0 committed up to 4 while the output partition 0 ended at 2:
    # the prediction of (0, 3) (output offset 2) was not written yet
    samples = [({0: 4}, {"output": {0: 2, 1: 2}, "dlq": {0: 1, 1: 0}})]
    acc = faults.account(_placed(), preds, dlq, samples)
    assert acc["committed_before_output"] == 1
    assert acc["early_examples"][0][0] == (0, 3)
    # and a dead letter not yet written counts the same
    samples = [({0: 3}, {"output": {0: 3, 1: 2}, "dlq": {0: 0, 1: 0}})]
    acc = faults.account(_placed(), preds, dlq, samples)
    assert acc["committed_before_output"] == 1
    assert acc["early_examples"][0][0] == (0, 2)
