"""The sentence grammar of the built-in corpus (``minitransformer.data.corpus``).

``sentence(c, g, s)`` writes one sentence. It makes every random choice through
the chooser ``c``, which has three methods:

- ``c.choose(weights) -> i``: option ``i`` with probability ``weights[i] / sum(weights)``
  (zero weights are options that do not exist in this state);
- ``c.word(words, weight) -> w``: a choice among ``words`` with probability
  ``weight[w] / sum(weight[v] for v in words)`` (uniform when ``weight`` is None),
  written at once; ``c.peek_word(words, ahead, weight)`` chooses one that is
  written ``ahead`` tokens later;
- ``c.emit(*tokens)``: writes fixed words ("the", "was", ",", ".").

The corpus module has two choosers: one samples (the generator), one reads a
given text (the parser). The grammar itself, in the notation of the code
(``[x]`` optional, ``|`` a choice, P a person, O an object):

    sentence  = [opener ","] clause "."             statement
              | question "?"
              | "there was" O_new place "."
              | "when" simple "," clause "."
    clause    = P tv O [place] [adverb] [because]  | P iv place [adverb] [because]
              | P dv O "to" P_other                | P say "that" simple
              | O "was" ["very"] adjective         | P "was" ["very"] feeling "about" O [because]
              | P social "the" role [place] [because]  | P tv O "and" tv O
    simple    = P tv O | P iv place | O "was" adjective | P "was" feeling "about" O
    because   = "because" simple
    question  = "did" P tv_base O | "where did" P tv_base O | "why was" O_reused adjective
              | "who" tv O | "did" P social_base "the" role
    place     = preposition "the" place_noun
    P         = pronoun (the last person) | a person already named | a new name
    O         = "the" noun already used | ("a" | "an") [adjective] new noun

Every sentence names an object, a place or a role, so every sentence holds a
word of its topic: the first one tells which topic the document has, and a
sentence from another document almost always shows another topic. (With
``Grammar(topical_words=False)`` only places and roles belong to a topic, and
the first sentence is the one that must show it.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

# Sentence forms and clause kinds, in the order of Grammar.form_weights and Grammar.clause_weights.
STATEMENT, QUESTION, THERE, WHEN = range(4)
TV, IV, DV, SAY, COP, FEEL, SOCIAL, AND = range(8)


@dataclass
class Topic:
    """One topic's words; ``verbs`` are (base, past) pairs."""

    name: str
    places: tuple
    nouns: tuple
    verbs: tuple
    adjectives: tuple
    roles: tuple


class Lexicon(NamedTuple):
    """The words one topic's sentences draw from: its own lists plus the shared ones."""

    places: tuple
    nouns: tuple
    roles: tuple
    adjectives: tuple  # shared adjectives, then the topic's
    tv_past: tuple  # transitive verbs, the topic's then the shared ones: "chopped", "found"
    tv_base: tuple  # the same verbs, base form: "chop", "find"


@dataclass
class Grammar:
    """Word lists and probabilities of the corpus grammar.

    Shared verbs are (base, past) pairs; ``openers`` are phrases. ``__post_init__``
    checks that no word is in two lists (the grammar's unambiguity rests on it)
    and builds one ``Lexicon`` per topic. To change a grammar, build a new one
    (``dataclasses.replace(g, p_stop=0.1)``).
    """

    topics: list
    names_female: tuple
    names_male: tuple
    transitive: tuple
    intransitive: tuple
    ditransitive: tuple
    social: tuple
    saying: tuple
    adjectives: tuple
    feelings: tuple
    adverbs: tuple
    openers: tuple
    prepositions: tuple
    min_sentences: int = 2
    max_sentences: int = 12
    p_stop: float = 0.2            # P(stop) after each sentence from min_sentences on
    max_people: int = 3
    max_objects: int = 4
    form_weights: tuple = (0.64, 0.1, 0.08, 0.18)  # statement, question, there was, when
    clause_weights: tuple = (0.26, 0.1, 0.1, 0.1, 0.1, 0.08, 0.1, 0.06)  # TV IV DV SAY COP FEEL SOCIAL AND
    simple_weights: tuple = (0.4, 0.2, 0.2, 0.2)  # TV IV COP FEEL
    question_weights: tuple = (0.3, 0.2, 0.15, 0.2, 0.15)  # did-tv, where-did, why-was, who, did-social
    person_weights: tuple = (0.25, 0.45, 0.3)  # pronoun, reuse, new
    object_weights: tuple = (0.5, 0.5)  # reuse, new
    p_opener: float = 0.2
    p_place: float = 0.4
    p_adverb: float = 0.25
    p_because: float = 0.15
    p_very: float = 0.2
    p_adjective: float = 0.4
    zipf: float = 1.0  # word k of a list (k = 0, 1, ...) has weight 1 / (k + 2) ** zipf; 0: uniform
    # True: objects, verbs and adjectives come from the document's topic (onions in the kitchen), so every
    # sentence shows its topic. False: only places and roles do; objects, verbs and adjectives are shared
    # by all topics. Less for a model to learn about topics (a GPT reaches its floor sooner), weaker
    # next-sentence cues. The first sentence then always names a place or a role (the topic must show).
    topical_words: bool = True

    def verb_lists(self) -> list:
        """Every list of (base, past) verb pairs: the shared ones, then each topic's."""
        return [self.transitive, self.intransitive, self.ditransitive, self.social, *(t.verbs for t in self.topics)]

    @classmethod
    def from_words(cls, w, **options) -> Grammar:
        """Grammar from a module or object with the lists of ``corpus_words``."""
        pairs = lambda items: tuple(tuple(v.split(":")) for v in items)  # noqa: E731
        topics = [Topic(name, tuple(d["places"].split()), tuple(d["nouns"].split()), pairs(d["verbs"].split()),
                        tuple(d["adjectives"].split()), tuple(d["roles"].split())) for name, d in w.TOPICS.items()]
        return cls(topics, tuple(w.NAMES_FEMALE), tuple(w.NAMES_MALE), pairs(w.TRANSITIVE), pairs(w.INTRANSITIVE),
                   pairs(w.DITRANSITIVE), pairs(w.SOCIAL), tuple(w.SAYING), tuple(w.ADJECTIVES),
                   tuple(w.FEELINGS), tuple(w.ADVERBS), tuple(w.OPENERS), tuple(w.PREPOSITIONS), **options)

    def __post_init__(self):
        function_words = {"the", "a", "an", "was", "very", "did", "where", "why", "who", "that", "when", "because",
                          "and", "to", "there", "she", "he", "about", *self.prepositions}
        function_words |= {x for o in self.openers for x in o.split()}
        lists = [self.names_female, self.names_male, self.saying, self.adjectives, self.feelings, self.adverbs]
        lists += [[v for pair in vs for v in set(pair)] for vs in (self.transitive, self.intransitive,
                                                                    self.ditransitive, self.social)]
        for t in self.topics:
            lists += [t.places, t.nouns, [v for pair in t.verbs for v in set(pair)], t.adjectives, t.roles]
        seen: dict = {}
        for i, lst in enumerate(lists):
            for word in lst:
                key = word.lower()
                if key in function_words or seen.setdefault(key, i) != i:
                    raise ValueError(f"word {word!r} is in two word lists; the grammar would be ambiguous")
                if not word.isalpha():
                    raise ValueError(f"word {word!r} must be letters only")
        self.names = self.names_female + self.names_male
        fewest_nouns = min((len(t.nouns) for t in self.topics), default=0)
        if not (2 <= self.max_people <= len(self.names) and 1 <= self.max_objects <= fewest_nouns
                and 1 <= self.min_sentences <= self.max_sentences and 0.0 < self.p_stop <= 1.0):
            raise ValueError("need 2 <= max_people <= number of names, 1 <= max_objects <= nouns of every topic, "
                             "1 <= min_sentences <= max_sentences and 0 < p_stop <= 1")
        needed = dict(transitive=self.transitive, intransitive=self.intransitive, ditransitive=self.ditransitive,
                      social=self.social, saying=self.saying, feelings=self.feelings, adverbs=self.adverbs,
                      openers=self.openers, prepositions=self.prepositions, topics=self.topics)
        needed.update({f"{t.name}.{k}": getattr(t, k) for t in self.topics for k in ("places", "roles")})
        needed.update({f"{t.name}.adjectives": self.adjectives + t.adjectives for t in self.topics})
        for name, lst in needed.items():
            if not lst:
                raise ValueError(f"the grammar needs at least one word in {name}")
        self.pronoun = {**{n: "she" for n in self.names_female}, **{n: "he" for n in self.names_male}}
        # Zipf-like word frequencies, as in real text: a few words of each list are common, most are rare.
        # A small model learns the common ones quickly, and they carry most of the text.
        self.weight = {}
        for lst in [self.names_female, self.names_male, self.saying, self.adjectives, self.feelings, self.adverbs,
                    self.prepositions, *self.verb_lists(), *(x for t in self.topics for x in (t.places, t.nouns,
                                                                                             t.roles, t.adjectives))]:
            for k, item in enumerate(lst):
                for word in (item if isinstance(item, tuple) else (item,)):
                    self.weight[word] = 1.0 / (k + 2.0) ** self.zipf
        self.lexicons = []
        for t in self.topics:
            shared = [t] if self.topical_words else self.topics
            verbs = tuple(v for u in shared for v in u.verbs) + self.transitive
            self.lexicons.append(Lexicon(t.places, tuple(n for u in shared for n in u.nouns), t.roles,
                                         self.adjectives + tuple(a for u in shared for a in u.adjectives),
                                         tuple(v[1] for v in verbs), tuple(v[0] for v in verbs)))
        self.iv_past = tuple(v[1] for v in self.intransitive)
        self.social_past, self.social_base = (tuple(v[i] for v in self.social) for i in (1, 0))
        self.dv_past = tuple(v[1] for v in self.ditransitive)
        self.openers_split = tuple(tuple(o.split()) for o in self.openers)
        self.opener_weights = tuple(1.0 / (k + 2.0) ** self.zipf for k in range(len(self.openers)))


class State:
    """What a document has introduced so far: its topic, people, objects, the last person named."""

    __slots__ = ("topic", "people", "objects", "last", "n_sentences")

    def __init__(self, topic: int):
        self.topic, self.people, self.objects, self.last, self.n_sentences = topic, [], [], None, 0

    def copy(self) -> State:
        s = State(self.topic)
        s.people, s.objects, s.last, s.n_sentences = list(self.people), list(self.objects), self.last, self.n_sentences
        return s


def render(tokens) -> str:
    """Tokens -> sentence text: first letter capitalised, punctuation attached to the word before it."""
    out = tokens[0][:1].upper() + tokens[0][1:]
    for t in tokens[1:]:
        out += t if t in (",", ".", "?") else " " + t
    return out


def _maybe(c, p: float) -> bool:
    """An optional part: taken with probability ``p``. Skipping it is a choice too, and costs log(1 - p)."""
    return c.choose((1.0 - p, p)) == 1


def person(c, g: Grammar, s: State, other_than=None) -> str:
    """A person: "she"/"he" (the last person named), a name the document used, or a new name.

    ``other_than`` None: a subject (a pronoun is allowed). Otherwise the second
    person of "gave the lamp to ...", never the subject itself. A new name is
    uniform over the names not used yet, so "Anna" is "reused" exactly when
    Anna appeared before: the text decides which option was taken.
    """
    others = [p for p in s.people if p != other_than]
    w = g.person_weights
    how = c.choose((w[0] if other_than is None and s.last is not None else 0.0,  # pronoun
                    w[1] if others else 0.0,  # a person already named
                    w[2] if len(s.people) < g.max_people else 0.0))  # a new person
    if how == 0:
        name = s.last
        c.emit(g.pronoun[name])  # she
    elif how == 1:
        name = c.word(others)  # Anna (again)
    else:
        name = c.word([n for n in g.names if n not in s.people], g.weight)  # Anna (first time)
        s.people.append(name)
    s.last = name
    return name


def thing(c, g: Grammar, s: State, reuse: bool = True, new: bool = True) -> None:
    """An object: "the lamp" (a noun the document used) or "a lamp" / "an old lamp" (a new noun of the topic)."""
    lex = g.lexicons[s.topic]
    w = g.object_weights
    if c.choose((w[0] if reuse and s.objects else 0.0, w[1] if new and len(s.objects) < g.max_objects else 0.0)) == 0:
        c.emit("the")
        c.word(s.objects)
        return
    # Choose the words first (the article depends on the next word), write them after it.
    adjective = c.peek_word(lex.adjectives, 1, g.weight) if _maybe(c, g.p_adjective) else None
    noun = c.peek_word([n for n in lex.nouns if n not in s.objects], 2 if adjective else 1, g.weight)
    c.emit("an" if (adjective or noun)[0] in "aeiou" else "a")
    if adjective:
        c.emit(adjective)
    c.emit(noun)
    s.objects.append(noun)


def place(c, g: Grammar, s: State) -> None:
    """A place of the topic: "in the kitchen", "near the pantry", ..."""
    c.word(g.prepositions, g.weight)
    c.emit("the")
    c.word(g.lexicons[s.topic].places, g.weight)


def simple(c, g: Grammar, s: State) -> None:
    """A clause without modifiers, inside "that ...", "when ..." and "because ..."."""
    lex = g.lexicons[s.topic]
    w = g.simple_weights
    kind = c.choose((w[0], w[1], w[2] if s.objects else 0.0, w[3]))
    if kind == 0:  # Anna chopped an onion
        person(c, g, s)
        c.word(lex.tv_past, g.weight)
        thing(c, g, s)
    elif kind == 1:  # Anna waited in the kitchen
        person(c, g, s)
        c.word(g.iv_past, g.weight)
        place(c, g, s)
    elif kind == 2:  # the onion was salty
        thing(c, g, s, new=False)
        c.emit("was")
        c.word(lex.adjectives, g.weight)
    else:  # Anna was happy about the soup
        person(c, g, s)
        c.emit("was")
        c.word(g.feelings, g.weight)
        c.emit("about")
        thing(c, g, s)


def clause(c, g: Grammar, s: State, need_place_or_role: bool = False) -> None:
    """A main clause with its optional place, adverb and "because" tail."""
    lex = g.lexicons[s.topic]
    kind = c.choose(tuple(0.0 if need_place_or_role and k not in (IV, SOCIAL) else w
                          for k, w in enumerate(g.clause_weights)))
    if kind == COP:  # the soup was (very) salty
        thing(c, g, s)
        c.emit("was")
        if _maybe(c, g.p_very):
            c.emit("very")
        c.word(lex.adjectives, g.weight)
        return
    subject = person(c, g, s)
    if kind == SAY:  # Anna said that ...
        c.word(g.saying, g.weight)
        c.emit("that")
        simple(c, g, s)
        return
    if kind == DV:  # Anna gave the soup to Ben
        c.word(g.dv_past, g.weight)
        thing(c, g, s)
        c.emit("to")
        person(c, g, s, other_than=subject)
        return
    if kind == AND:  # Anna chopped an onion and fried the onion
        c.word(lex.tv_past, g.weight)
        thing(c, g, s)
        c.emit("and")
        c.word(lex.tv_past, g.weight)
        thing(c, g, s)
        return
    if kind == TV:  # Anna chopped an onion
        c.word(lex.tv_past, g.weight)
        thing(c, g, s)
    elif kind == IV:  # Anna waited in the kitchen
        c.word(g.iv_past, g.weight)
        place(c, g, s)
    elif kind == FEEL:  # Anna was (very) happy about the soup
        c.emit("was")
        if _maybe(c, g.p_very):
            c.emit("very")
        c.word(g.feelings, g.weight)
        c.emit("about")
        thing(c, g, s)
    else:  # SOCIAL: Anna thanked the cook
        c.word(g.social_past, g.weight)
        c.emit("the")
        c.word(lex.roles, g.weight)
    if kind in (TV, SOCIAL) and _maybe(c, g.p_place):  # ... in the kitchen
        place(c, g, s)
    if kind in (TV, IV) and _maybe(c, g.p_adverb):  # ... quickly
        c.word(g.adverbs, g.weight)
    if _maybe(c, g.p_because):  # ... because Ben was hungry about the soup
        c.emit("because")
        simple(c, g, s)


def question(c, g: Grammar, s: State) -> None:
    """A question (the "?" included)."""
    lex = g.lexicons[s.topic]
    w = g.question_weights
    kind = c.choose((w[0], w[1], w[2] if s.objects else 0.0, w[3], w[4]))
    if kind == 0:  # did Anna chop the onion
        c.emit("did")
        person(c, g, s)
        c.word(lex.tv_base, g.weight)
        thing(c, g, s)
    elif kind == 1:  # where did Anna chop the onion
        c.emit("where", "did")
        person(c, g, s)
        c.word(lex.tv_base, g.weight)
        thing(c, g, s)
    elif kind == 2:  # why was the onion salty
        c.emit("why", "was")
        thing(c, g, s, new=False)
        c.word(lex.adjectives, g.weight)
    elif kind == 3:  # who chopped the onion
        c.emit("who")
        c.word(lex.tv_past, g.weight)
        thing(c, g, s)
    else:  # did Anna thank the cook
        c.emit("did")
        person(c, g, s)
        c.word(g.social_base, g.weight)
        c.emit("the")
        c.word(lex.roles, g.weight)
    c.emit("?")


def sentence(c, g: Grammar, s: State) -> None:
    """One sentence from state ``s`` (updated in place: new people and objects, the last person)."""
    w = g.form_weights
    first = not g.topical_words and s.n_sentences == 0  # must show the topic: a place or a role
    form = c.choose((w[0], 0.0 if first else w[1], w[2] if len(s.objects) < g.max_objects else 0.0,
                     0.0 if first else w[3]))
    if form == QUESTION:
        question(c, g, s)
    elif form == THERE:  # there was a pan in the kitchen.
        c.emit("there", "was")
        thing(c, g, s, reuse=False)
        place(c, g, s)
        c.emit(".")
    else:
        if form == WHEN:  # when Anna waited in the kitchen, ...
            c.emit("when")
            simple(c, g, s)
            c.emit(",")
        elif _maybe(c, g.p_opener):  # in the morning, ...
            c.emit(*g.openers_split[c.choose(g.opener_weights)], ",")
        clause(c, g, s, need_place_or_role=first)
        c.emit(".")
    s.n_sentences += 1
