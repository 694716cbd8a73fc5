"""Tests for the CHAIR-style synonym lexicon."""

from __future__ import annotations

import pytest

from mmrlaif.lexicon import (
    Lexicon,
    Mention,
    UnknownObjectError,
    regular_plural,
    tokenize,
)


@pytest.fixture
def lexicon() -> Lexicon:
    return Lexicon(
        synonyms={
            "cup": ["mug", "coffee cup"],
            "ball": ["tennis ball", "football"],
            "dog": ["puppy"],
            "book": [],
            "box": [],
            "bench": [],
            "knife": [],
            "person": ["man", "woman"],
            "mouse": [],
            "bear": [],
            "glass": ["wine glass"],
        },
        exclusions=["hot dog", "teddy bear"],
        irregular_plurals={"knife": "knives", "mouse": "mice", "person": "people"},
    )


def canonicals(lex: Lexicon, text: str) -> list[str]:
    return [m.canonical for m in lex.extract(text)]


def test_tokenize_lowercases_splits_hyphens_and_drops_possessives() -> None:
    assert tokenize("The Dog's T-shirt, don't!") == ["the", "dog", "t", "shirt", "don't"]
    assert tokenize("dogs’ bowls") == ["dogs", "bowls"]


@pytest.mark.parametrize(
    ("word", "plural"),
    [
        ("cup", "cups"),
        ("bus", "buses"),
        ("box", "boxes"),
        ("bench", "benches"),
        ("brush", "brushes"),
        ("waltz", "waltzes"),
        ("puppy", "puppies"),
        ("toy", "toys"),  # vowel + y -> +s
        ("knife", "knifes"),  # f/fe -> ves only through irregular_plurals
    ],
)
def test_regular_plural(word: str, plural: str) -> None:
    assert regular_plural(word) == plural


def test_objects_sorted_and_contains(lexicon: Lexicon) -> None:
    assert lexicon.objects == tuple(sorted(lexicon.objects))
    assert "cup" in lexicon.objects
    assert "Coffee Cups" in lexicon
    assert "hot dog" not in lexicon  # an exclusion is not an object name
    assert "zebra" not in lexicon


def test_synonyms_map_to_canonical(lexicon: Lexicon) -> None:
    assert lexicon.canonical("mug") == "cup"
    assert lexicon.canonical("Puppy") == "dog"
    assert lexicon.canonical("puppies") == "dog"
    assert lexicon.canonical("people") == "person"
    assert lexicon.canonical("TENNIS BALLS") == "ball"
    assert canonicals(lexicon, "A mug next to a puppy.") == ["cup", "dog"]


def test_canonical_unknown_names_the_object(lexicon: Lexicon) -> None:
    with pytest.raises(UnknownObjectError, match="zebra"):
        lexicon.canonical("zebra")
    with pytest.raises(KeyError):  # UnknownObjectError is a KeyError
        lexicon.canonical("hot dog")
    with pytest.raises(UnknownObjectError) as excinfo:
        lexicon.canonical("giraffe")
    assert excinfo.value.name == "giraffe"
    assert str(excinfo.value) == "unknown object 'giraffe': not a name or synonym in the lexicon"


@pytest.mark.parametrize(
    ("text", "canonical", "surface"),
    [
        ("two cups", "cup", "cups"),  # +s
        ("three boxes", "box", "boxes"),  # +es after x
        ("wooden benches", "bench", "benches"),  # +es after ch
        ("wine glasses", "glass", "wine glasses"),  # +es after s, multi-word
        ("two puppies", "dog", "puppies"),  # consonant + y -> ies
        ("sharp knives", "knife", "knives"),  # irregular
        ("three mice", "mouse", "mice"),  # irregular
        ("some people", "person", "people"),  # irregular
        ("tennis balls", "ball", "tennis balls"),  # plural on the last word
        ("coffee cups", "cup", "coffee cups"),
    ],
)
def test_plurals(lexicon: Lexicon, text: str, canonical: str, surface: str) -> None:
    # The surface is the last words of the text, so it ends at the text's word count.
    n_words, n_surface = len(text.split()), len(surface.split())
    assert lexicon.extract(text) == [Mention(canonical, surface, n_words - n_surface, n_words)]


def test_plural_applies_only_to_last_word(lexicon: Lexicon) -> None:
    # "tenniss ball" is not a plural of "tennis ball"; only the standalone "ball" matches.
    assert lexicon.extract("tenniss ball") == [Mention("ball", "ball", 1, 2)]


def test_whole_word_matching(lexicon: Lexicon) -> None:
    assert lexicon.extract("a notebook and a cupboard") == []
    assert lexicon.extract("a bookshelf") == []
    assert canonicals(lexicon, "a book") == ["book"]


def test_case_and_punctuation_ignored(lexicon: Lexicon) -> None:
    assert lexicon.extract("MUG!! (Dog), book;") == [
        Mention("cup", "mug", 0, 1),
        Mention("dog", "dog", 1, 2),
        Mention("book", "book", 2, 3),
    ]


def test_longest_match_wins(lexicon: Lexicon) -> None:
    # "tennis ball" is one mention of ball (2 words), not "ball" alone.
    assert lexicon.extract("a tennis ball") == [Mention("ball", "tennis ball", 1, 3)]
    # "coffee cup" is one mention; the following "mug" is a second one.
    assert lexicon.extract("coffee cup and mug") == [
        Mention("cup", "coffee cup", 0, 2),
        Mention("cup", "mug", 3, 4),
    ]


def test_exclusions_consume_their_words(lexicon: Lexicon) -> None:
    assert lexicon.extract("a hot dog") == []
    assert lexicon.extract("two hot dogs") == []  # plural exclusion
    assert lexicon.extract("a hot-dog") == []  # hyphen splits into the same words
    assert lexicon.extract("a teddy bear") == []
    # 1 real dog + 1 hot dog -> exactly one dog mention, at word 1.
    assert lexicon.extract("a dog and a hot dog") == [Mention("dog", "dog", 1, 2)]
    assert canonicals(lexicon, "a bear hugs a teddy bear") == ["bear"]


def test_repeated_mentions_kept_in_extract_but_unique_in_objects_in(lexicon: Lexicon) -> None:
    text = "A dog, a mug, another puppy and a cup."
    assert canonicals(lexicon, text) == ["dog", "cup", "dog", "cup"]
    assert lexicon.objects_in(text) == ["dog", "cup"]


def test_empty_text(lexicon: Lexicon) -> None:
    assert lexicon.extract("") == []
    assert lexicon.objects_in("  ...  ") == []


def test_surface_mapped_to_two_canonicals_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"'mug'.*'cup'.*'glass'"):
        Lexicon({"cup": ["mug"], "glass": ["Mug"]})
    # A canonical name is itself a surface name.
    with pytest.raises(ValueError, match=r"'cup'.*'cup'.*'mug'"):
        Lexicon({"cup": [], "mug": ["cup"]})


def test_same_surface_twice_for_one_canonical_is_fine() -> None:
    lex = Lexicon({"cup": ["mug", "MUG", "cup"]})
    assert lex.canonical("mugs") == "cup"


def test_explicit_name_wins_over_generated_plural() -> None:
    # "glasses" (eyewear) is explicit; it is not the plural of "glass" here.
    lex = Lexicon({"glass": [], "eyeglasses": ["glasses"]})
    assert lex.canonical("glasses") == "eyeglasses"
    assert lex.canonical("glass") == "glass"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"synonyms": {"": ["mug"]}}, "empty canonical"),
        ({"synonyms": {"cup": [" "]}}, "empty synonym"),
        ({"synonyms": {"cup": "mug"}}, "sequence"),
        ({"synonyms": {"cup": []}, "exclusions": ["!!"]}, "empty exclusion"),
        ({"synonyms": {"cup": []}, "exclusions": ["cups"]}, "also a name"),
        ({"synonyms": {"cup": []}, "irregular_plurals": {"cup": "cup s"}}, "one word"),
    ],
)
def test_constructor_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Lexicon(**kwargs)
