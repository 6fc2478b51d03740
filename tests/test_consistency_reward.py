"""The consistency reward (the reasoning names exactly the option the answer picks) and the keyword matching it
reads the reasoning with: rules pinned by examples, then properties over arbitrary text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqathinker.rewards import (
    REWARDS,
    check_keywords,
    consistency_reward,
    get_reward_funcs,
    named_option,
    named_options,
    parse_choice,
    think_text,
)

OPTIONS = ["too dark", "blurry", "noisy"]
KEYWORDS = {
    "too dark": ["dark", "under exposed"],
    "blurry": ["blur", "blurry", "out of focus"],
    "noisy": ["noise", "noisy", "grainy"],
}
FUZZ = settings(max_examples=500, deadline=None)


def completion(think: str, answer: str) -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


# ---------------------------------------------------------------- matching


@pytest.mark.parametrize(
    ("think", "named"),
    [
        ("The video looks too dark.", {"too dark"}),
        ("DARK", {"too dark"}),
        ("underexposed", {"too dark"}),  # a word of two parts: joined by nothing,
        ("under-exposed", {"too dark"}),  # a hyphen,
        ("under \n exposed", {"too dark"}),  # or spaces
        ("darkness everywhere", set()),  # whole words only
        ("dark_room", set()),
        ("It is out-of-focus and grainy", {"blurry", "noisy"}),
        ("not dark at all", {"too dark"}),  # lexical: a negation still names it
        ("", set()),
        ("crisp and clean", set()),
    ],
)
def test_named_options_rules(think, named):
    assert named_options(think, KEYWORDS) == named


@pytest.mark.parametrize(
    ("think", "options", "option"),
    [
        ("The video looks too dark.", OPTIONS, 0),
        ("Grainy.", OPTIONS, 2),
        ("Grainy.", ["Noisy.", "TOO DARK"], 0),  # option texts compare as parse_choice compares them
        ("Dark and blurry.", OPTIONS, None),  # two names: no single option
        ("Crisp.", OPTIONS, None),  # none
        ("Blurry.", ["too dark", "noisy"], None),  # a name that is not an option of this row
    ],
)
def test_named_option_is_the_one_option_a_reasoning_commits_to(think, options, option):
    assert named_option(think, options, KEYWORDS) == option


def test_think_text_is_the_first_closed_think_block():
    assert think_text(completion("too dark", "A")) == "too dark"
    assert think_text("<think>a</think><think>b</think>") == "a"
    assert think_text("<think>dark<answer>A</answer>") == ""
    assert think_text("no tags, dark") == ""


@pytest.mark.parametrize(
    "keywords",
    [None, {}, {"a": []}, {"a": "dark"}, {"a": ["", "dark"]}, {"a": [" - "]}, {"": ["x"]}, {1: ["x"]}],
)
def test_malformed_keywords_are_refused(keywords):
    with pytest.raises(ValueError, match="keywords"):
        check_keywords(keywords)


def test_names_differing_only_in_case_are_refused():
    with pytest.raises(ValueError, match="given twice"):
        check_keywords({"Blurry": ["blur"], "blurry.": ["soft"]})


# ---------------------------------------------------------------- the reward


@pytest.mark.parametrize(
    ("text", "reward"),
    [
        (completion("Too dark.", "A"), 1.0),
        (completion("Under-exposed, dim.", "(A) too dark"), 1.0),
        (completion("Blurry.", "blurry"), 1.0),  # the option's text as the answer
        (completion("Too dark and blurry.", "A"), 0.0),  # names another option too
        (completion("Blurry.", "A"), 0.0),  # names another option only
        (completion("Looks fine.", "A"), 0.0),  # names none
        (completion("Too dark.", "A or B"), 0.0),  # picks no option
        (completion("Too dark.", "D"), 0.0),
        ("<answer>A</answer> too dark", 0.0),  # no reasoning
        (completion("Blurry.", "x") + completion("Too dark.", "A"), 0.0),  # the first think, the last answer
    ],
)
def test_consistency_reward_rules(text, reward):
    assert consistency_reward([text], options=[OPTIONS], keywords=KEYWORDS) == [reward]


def test_consistency_reward_needs_no_label_and_skips_rows_it_says_nothing_about():
    texts = [completion("Too dark.", "3.50"), completion("Too dark.", "A"), completion("Sharp.", "A")]
    columns = {
        "task": ["score", "choice", "choice"],
        "options": [[], OPTIONS, ["sharp", "soft"]],  # no option of the last row has keywords
        "answer": [None, "C", "A"],  # never read: the pick agrees with the reasoning
        "mos": [3.5, None, None],
    }
    assert consistency_reward(texts, **columns, keywords=KEYWORDS) == [None, 1.0, None]
    # option names compare as option texts do: case, spaces and a final "." ignored
    shouted = {" TOO DARK. ": ["dark"], "Blurry": ["blur"]}
    assert consistency_reward([completion("dark", "A")], options=[OPTIONS], keywords=shouted) == [1.0]
    messages = [[{"role": "assistant", "content": completion("noisy, grainy", "C")}]]
    assert consistency_reward(messages, options=[OPTIONS], keywords=KEYWORDS) == [1.0]


def test_consistency_reward_errors():
    with pytest.raises(ValueError, match="needs keywords"):
        consistency_reward([completion("dark", "A")], options=[OPTIONS])
    with pytest.raises(ValueError, match="need an 'options' column"):
        consistency_reward([completion("dark", "A")], options=None, keywords=KEYWORDS)
    with pytest.raises(TypeError, match="single str"):
        consistency_reward(completion("dark", "A"), options=[OPTIONS], keywords=KEYWORDS)
    with pytest.raises(ValueError, match="unknown task"):
        consistency_reward([completion("dark", "A")], options=[OPTIONS], keywords=KEYWORDS, task=["mcq"])


def test_registry_binds_the_keywords():
    assert REWARDS["consistency"].func is consistency_reward
    (reward,) = get_reward_funcs(["consistency"], {"consistency": {"keywords": KEYWORDS}})
    assert reward.__name__ == "consistency_reward"
    assert reward([completion("blur", "B")], options=[OPTIONS]) == [1.0]
    with pytest.raises(ValueError, match="has no parameter"):
        get_reward_funcs(["consistency"], {"consistency": {"words": KEYWORDS}})


# ---------------------------------------------------------------- fuzz

FRAGMENTS = [
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "A",
    "B",
    "C",
    "dark",
    "blur",
    "grainy",
    " ",
    "-",
]
texts = st.one_of(
    st.text(),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=12).map("".join),
    st.builds(
        completion,
        st.lists(st.sampled_from([*FRAGMENTS[7:], "out of focus", "under exposed", "fine"]), max_size=4).map(
            " ".join
        ),
        st.sampled_from(["A", "B", "C", "D", "blurry", "A or B", ""]),
    ),
)


@FUZZ
@given(st.lists(st.tuples(texts, st.sampled_from(["score", "choice"])), min_size=1, max_size=6))
def test_consistency_reward_never_raises_and_follows_its_formula(rows):
    batch = [text for text, _ in rows]
    tasks = [task for _, task in rows]
    options = [OPTIONS if task == "choice" else [] for task in tasks]
    rewards = consistency_reward(batch, options=options, keywords=KEYWORDS, task=tasks)
    for text, task, reward in zip(batch, tasks, rewards, strict=True):
        if task == "score":
            assert reward is None
            continue
        pick = parse_choice(text, OPTIONS)
        named = named_options(think_text(text), KEYWORDS)
        assert reward == float(pick is not None and named == {OPTIONS[pick]})


@FUZZ
@given(st.text(), st.text(), st.sampled_from(sorted(KEYWORDS)))
def test_any_keyword_between_spaces_names_its_option(before, after, option):
    for word in KEYWORDS[option]:
        assert option in named_options(f"{before} {word.upper()} {after}", KEYWORDS)


@FUZZ
@given(texts, st.permutations(OPTIONS))
def test_named_option_is_the_single_named_option(text, options):
    named = named_options(think_text(text), KEYWORDS)
    option = named_option(think_text(text), options, KEYWORDS)
    assert option == (options.index(next(iter(named))) if len(named) == 1 else None)
