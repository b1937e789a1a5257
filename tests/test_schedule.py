"""The encoder schedule's event model (hw/schedule.py) on the built-in model: its PE accounting equals
today's products plus the one extra input load per token (query and key/value load the row apart),
and each order it compares is bounded by what it must contain."""

import pytest

from bebert.builtin import BUILTIN_DIR
from bebert.hw.accelerator import run_cycles
from bebert.hw.design.config import HardwareConfig
from bebert.hw.design.plan import plan_for
from bebert.hw.encoder_units import encoder_units
from bebert.hw.schedule import STEP_OVERHEAD, inference_cycles, member_order
from bebert.sim.ensemble import load_simulation


@pytest.fixture(scope="module")
def plan():
    return plan_for(load_simulation(BUILTIN_DIR), HardwareConfig(64, 64, None, 4))


@pytest.mark.parametrize("tokens", [1, 7, 32])
def test_the_array_runs_todays_products_and_one_more_row_load_per_token(plan, tokens):
    units = encoder_units(plan, 32, 4, 8)
    layers, in_folds = 6, 384 // 64
    alone = run_cycles(plan, tokens)
    cycles = inference_cycles(plan, units, tokens)
    steps = plan.ensemble_members * (4 * layers * tokens + 1)  # key_value, query, attention_output, ffn; the head
    assert cycles.pe_busy_total == (alone.total - alone.answer + plan.ensemble_members * layers * tokens * in_folds
                                    + steps * STEP_OVERHEAD)
    assert cycles.total == cycles.pe_busy_total + sum(cycles.pe_waits.values()) + alone.answer


@pytest.mark.parametrize("tokens,lanes", [(1, 2), (32, 4), (32, 8)])
def test_the_pipelined_order_beats_the_serial_one_which_adds_every_unit(plan, tokens, lanes):
    units = encoder_units(plan, 32, lanes, 8)
    piped, serial = inference_cycles(plan, units, tokens), inference_cycles(plan, units, tokens, serial=True)
    assert piped.pe_busy_total == serial.pe_busy_total
    assert piped.total < serial.total
    # one unit at a time: the array's cycles plus at least every LayerNorm row's and softmax row's
    assert serial.total >= serial.pe_busy_total + serial.unit_busy["layer_norm"] + serial.unit_busy["softmax"]


def test_the_built_in_model_meets_the_issue_target_at_32_tokens(plan):
    cycles = inference_cycles(plan, encoder_units(plan, 32, 4, 8), 32)
    assert cycles.total <= 1.25 * run_cycles(plan, 32).total


def test_a_sentence_longer_than_the_build_is_refused(plan):
    with pytest.raises(ValueError, match="33 tokens on a build for 32"):
        inference_cycles(plan, encoder_units(plan, 32, 4, 8), 33)


@pytest.mark.parametrize("layers,tokens", [(1, 1), (2, 5)])
def test_every_step_runs_once_after_the_steps_it_reads(layers, tokens):
    order = member_order(layers, tokens)
    where = {(s.kind, s.layer, s.token): i for i, s in enumerate(order)}
    assert len(where) == len(order) == layers * tokens * 4 + 1 and order[-1].kind == "head"
    for layer in range(layers):
        last_key = max(where["key_value", layer, t] for t in range(tokens))
        for t in range(tokens):
            # the attention reads every key and value of the layer, and this token's query
            assert last_key < where["query", layer, t] < where["attention_output", layer, t]
            assert where["attention_output", layer, t] < where["ffn", layer, t]  # the FFN-in codes
            if layer + 1 < layers:  # the next layer's input codes of the token
                assert where["ffn", layer, t] < where["key_value", layer + 1, t]
