"""The BFCL AST checker, rule by rule, on real BFCL cases inlined here (no package needed)."""

from __future__ import annotations

from typing import Any

import pytest

from evals.ast_check import Verdict, check, is_type, normalize, value_allowed
from model.messages import ToolCall

# simple_python_0
TRIANGLE = [
    {
        "name": "calculate_triangle_area",
        "description": "Calculate the area of a triangle given its base and height.",
        "parameters": {
            "type": "dict",
            "properties": {
                "base": {"type": "integer", "description": "The base of the triangle."},
                "height": {"type": "integer", "description": "The height of the triangle."},
                "unit": {"type": "string", "description": "The unit of measure"},
            },
            "required": ["base", "height"],
        },
    }
]
TRIANGLE_ANSWER = [
    {"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}
]

# simple_python_83: tuples of floats
DISTANCE = [
    {
        "name": "calculate_distance",
        "description": "Calculate the distance between two GPS coordinates.",
        "parameters": {
            "type": "dict",
            "properties": {
                "coord1": {"type": "tuple", "items": {"type": "float"}},
                "coord2": {"type": "tuple", "items": {"type": "float"}},
                "unit": {"type": "string"},
            },
            "required": ["coord1", "coord2", "unit"],
        },
    }
]
DISTANCE_ANSWER = [
    {
        "calculate_distance": {
            "coord1": [[33.4484, -112.074]],
            "coord2": [[34.0522, -118.2437]],
            "unit": ["miles"],
        }
    }
]

# simple_python_89: a dict parameter
FETCH = [
    {
        "name": "db_fetch_records",
        "description": "Fetch records from a specified database table.",
        "parameters": {
            "type": "dict",
            "properties": {
                "database_name": {"type": "string"},
                "table_name": {"type": "string"},
                "conditions": {
                    "type": "dict",
                    "properties": {"department": {"type": "string"}, "school": {"type": "string"}},
                },
                "fetch_limit": {"type": "integer"},
            },
            "required": ["database_name", "table_name", "conditions"],
        },
    }
]
FETCH_ANSWER = [
    {
        "db_fetch_records": {
            "database_name": ["StudentDB"],
            "table_name": ["students"],
            "conditions": [{"department": ["Science"], "school": ["Bluebird High School"]}],
            "fetch_limit": ["", 0],
        }
    }
]

# simple_python_96: a list of dicts
QUERY = [
    {
        "name": "database.query",
        "description": "Query the database based on certain conditions.",
        "parameters": {
            "type": "dict",
            "properties": {
                "table": {"type": "string"},
                "conditions": {
                    "type": "array",
                    "items": {
                        "type": "dict",
                        "properties": {
                            "field": {"type": "string"},
                            "operation": {"type": "string"},
                            "value": {"type": "string"},
                        },
                    },
                },
            },
            "required": ["table", "conditions"],
        },
    }
]
QUERY_ANSWER = [
    {
        "database.query": {
            "table": ["user"],
            "conditions": [
                [
                    {"field": ["age"], "operation": [">"], "value": ["25"]},
                    {"field": ["job"], "operation": ["="], "value": ["engineer"]},
                ]
            ],
        }
    }
]

# multiple_0 (shortened): two functions, one is right
SHAPES = [
    {
        "name": "triangle_properties.get",
        "description": "Dimensions of a triangle from its three sides.",
        "parameters": {
            "type": "dict",
            "properties": {
                "side1": {"type": "integer"},
                "side2": {"type": "integer"},
                "side3": {"type": "integer"},
                "get_area": {"type": "boolean", "optional": True},
            },
            "required": ["side1", "side2", "side3"],
        },
    },
    {
        "name": "circle_properties.get",
        "description": "Dimensions of a circle from its radius.",
        "parameters": {
            "type": "dict",
            "properties": {"radius": {"type": "float"}},
            "required": ["radius"],
        },
    },
]
SHAPES_ANSWER = [
    {"triangle_properties.get": {"side1": [5], "side2": [4], "side3": [3], "get_area": ["", True]}}
]

# parallel_178: four calls of one function; the first expected call accepts two companies
STOCK = [
    {
        "name": "get_stock_price",
        "description": "Get the closing stock price for a company on a date.",
        "parameters": {
            "type": "dict",
            "properties": {
                "company_name": {"type": "string"},
                "date": {"type": "string"},
                "exchange": {"type": "string"},
            },
            "required": ["company_name", "date"],
        },
    }
]
STOCK_ANSWER = [
    {"get_stock_price": {"company_name": ["Microsoft", "Apple"], "date": ["2022-01-01"]}},
    {"get_stock_price": {"company_name": ["Microsoft"], "date": ["2022-02-01"]}},
    {"get_stock_price": {"company_name": ["Apple"], "date": ["2022-01-01"]}},
    {"get_stock_price": {"company_name": ["Apple"], "date": ["2022-02-01"]}},
]

# live_simple_58-27-0 (shortened): null is an allowed value of a string parameter
MOVIES = [
    {
        "name": "get_movies",
        "description": "Movies playing in a city.",
        "parameters": {
            "type": "dict",
            "required": ["city"],
            "properties": {"city": {"type": "string"}, "movie_date": {"type": "string"}},
        },
    }
]
MOVIES_ANSWER = [{"get_movies": {"city": ["Mumbai"], "movie_date": ["", None]}}]


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(name=name, arguments=arguments)


def simple(*calls: ToolCall) -> Verdict:
    return check("simple_python", list(calls), TRIANGLE, TRIANGLE_ANSWER)


def test_right_call_with_and_without_an_optional_param() -> None:
    assert simple(call("calculate_triangle_area", base=10, height=5)).valid
    assert simple(call("calculate_triangle_area", base=10, height=5, unit="units")).valid
    assert simple(call("calculate_triangle_area", base=10, height=5, unit=" Units.")).valid


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"base": 11, "height": 5}, "not one of"),
        ({"base": 10}, "missing required parameter 'height'"),
        ({"base": "10", "height": 5}, "should be of type integer"),
        ({"base": 10.0, "height": 5}, "should be of type integer"),
        ({"base": True, "height": 5}, "should be of type integer"),
        ({"base": 10, "height": 5, "color": "red"}, "unexpected parameter 'color'"),
        ({"base": 10, "height": 5, "unit": "cm"}, "not one of"),
    ],
)
def test_wrong_arguments(arguments: dict[str, Any], error: str) -> None:
    verdict = simple(call("calculate_triangle_area", **arguments))
    assert not verdict.valid and error in verdict.error


def test_wrong_name_and_wrong_count() -> None:
    verdict = simple(call("calculate_area", base=10, height=5))
    assert not verdict.valid and "expected 'calculate_triangle_area'" in verdict.error
    assert "expected 1 call(s), got 0" in simple().error
    right = call("calculate_triangle_area", base=10, height=5)
    assert not simple(right, right).valid


def test_param_in_the_doc_but_not_in_the_answer_is_unexpected() -> None:
    verdict = check("multiple", [call("get_movies", city="Mumbai")], MOVIES, MOVIES_ANSWER)
    assert verdict.valid
    docs = [{**MOVIES[0], "parameters": {**MOVIES[0]["parameters"]}}]
    docs[0]["parameters"]["properties"] = {**MOVIES[0]["parameters"]["properties"], "x": {}}
    verdict = check("multiple", [call("get_movies", city="Mumbai", x=1)], docs, MOVIES_ANSWER)
    assert not verdict.valid and "unexpected parameter 'x'" in verdict.error


def test_answer_key_param_that_is_not_optional_must_be_given() -> None:
    answer = [{"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units"]}}]
    right_before = call("calculate_triangle_area", base=10, height=5)
    verdict = check("simple_python", [right_before], TRIANGLE, answer)
    assert not verdict.valid and "'unit'" in verdict.error


def test_tuples_compare_as_lists() -> None:
    right = call("calculate_distance", coord1=[33.4484, -112.074], coord2=[34.0522, -118.2437])
    right.arguments["unit"] = "Miles"
    assert check("simple_python", [right], DISTANCE, DISTANCE_ANSWER).valid
    swapped = call("calculate_distance", coord1=[-112.074, 33.4484], coord2=[34.0522, -118.2437])
    swapped.arguments["unit"] = "miles"
    assert not check("simple_python", [swapped], DISTANCE, DISTANCE_ANSWER).valid
    strings = call("calculate_distance", coord1=["33.4484", "-112.074"], coord2=[34.0522, 1.0])
    strings.arguments["unit"] = "miles"
    verdict = check("simple_python", [strings], DISTANCE, DISTANCE_ANSWER)
    assert not verdict.valid and "type tuple" in verdict.error


def test_dict_parameter_key_by_key() -> None:
    def fetch(conditions: dict[str, Any], **extra: Any) -> Verdict:
        c = call("db_fetch_records", database_name="StudentDB", table_name="students", **extra)
        c.arguments["conditions"] = conditions
        return check("simple_python", [c], FETCH, FETCH_ANSWER)

    assert fetch({"department": "science", "school": "Bluebird High School"}).valid
    assert fetch({"department": "Science", "school": "Bluebird High School"}, fetch_limit=0).valid
    assert not fetch({"department": "Science"}).valid  # a key left out
    assert not fetch({"department": "Arts", "school": "Bluebird High School"}).valid
    extra_key = {"department": "Science", "school": "Bluebird High School", "year": 3}
    assert not fetch(extra_key).valid
    assert not fetch(
        {"department": "Science", "school": "Bluebird High School"}, fetch_limit=5
    ).valid


def test_list_of_dicts_in_order() -> None:
    age = {"field": "age", "operation": ">", "value": "25"}
    job = {"field": "job", "operation": "=", "value": "engineer"}
    q = call("database.query", table="user", conditions=[age, job])
    assert check("simple_python", [q], QUERY, QUERY_ANSWER).valid
    q.arguments["conditions"] = [job, age]
    assert not check("simple_python", [q], QUERY, QUERY_ANSWER).valid
    q.arguments["conditions"] = [age, {**job, "value": 25}]
    assert not check("simple_python", [q], QUERY, QUERY_ANSWER).valid


def test_multiple_needs_the_right_function_of_several() -> None:
    right = call("triangle_properties.get", side1=5, side2=4, side3=3)
    assert check("multiple", [right], SHAPES, SHAPES_ANSWER).valid
    right.arguments["get_area"] = True
    assert check("multiple", [right], SHAPES, SHAPES_ANSWER).valid
    right.arguments["get_area"] = 1
    assert not check("multiple", [right], SHAPES, SHAPES_ANSWER).valid
    wrong = call("circle_properties.get", radius=5.0)
    assert not check("multiple", [wrong], SHAPES, SHAPES_ANSWER).valid


def test_parallel_matches_greedily_as_bfcl_does() -> None:
    def stock(company: str, date: str) -> ToolCall:
        return call("get_stock_price", company_name=company, date=date)

    calls = [
        stock("Microsoft", "2022-01-01"),
        stock("Microsoft", "2022-02-01"),
        stock("Apple", "2022-01-01"),
        stock("Apple", "2022-02-01"),
    ]
    assert check("parallel", calls, STOCK, STOCK_ANSWER).valid
    assert check("parallel", [calls[0], calls[3], calls[2], calls[1]], STOCK, STOCK_ANSWER).valid
    # The first expected call accepts Microsoft or Apple on 01-01. Reversed, BFCL's greedy
    # matching (and so ours) gives it the Apple call, and then the third finds none: wrong,
    # although a one-to-one matching exists.
    verdict = check("parallel", list(reversed(calls)), STOCK, STOCK_ANSWER)
    assert not verdict.valid and "expected call 2" in verdict.error
    twice = calls[1:] + [stock("Apple", "2022-02-01")]  # no Microsoft on 01-01
    assert not check("parallel", twice, STOCK, STOCK_ANSWER).valid
    assert not check("parallel_multiple", calls[:3], STOCK, STOCK_ANSWER).valid


def test_null_and_empty_list_as_bfcl_allows_them() -> None:
    movies = call("get_movies", city="Mumbai", movie_date=None)
    assert check("live_simple", [movies], MOVIES, MOVIES_ANSWER).valid
    movies.arguments["movie_date"] = "today"
    assert not check("live_simple", [movies], MOVIES, MOVIES_ANSWER).valid
    empty = {"type": "array", "items": {"type": "string"}}
    assert value_allowed([], empty, ["", ["x"]]) and not value_allowed(["y"], empty, ["", ["x"]])


def test_irrelevance_and_relevance() -> None:
    some = [call("determine_body_mass_index", weight=70.0, height=1.8)]
    assert check("irrelevance", [], [], []).valid
    assert check("live_irrelevance", [], [], []).valid
    verdict = check("irrelevance", some, [], [])
    assert not verdict.valid and "determine_body_mass_index" in verdict.error
    assert check("live_relevance", some, [], []).valid
    assert not check("live_relevance", [], [], []).valid


def test_normalize_and_types() -> None:
    assert normalize("April 1, 2024") == normalize("april 1 2024") == "april12024"
    assert normalize("New-York_City/NY*^") == "newyorkcityny"
    assert normalize("it's") == 'it"s'
    text = {"type": "string"}
    assert value_allowed("San Francisco, CA", text, ["san francisco ca"])
    assert not value_allowed("San Jose", text, ["San Francisco"])
    assert value_allowed(5, {"type": "float"}, [5.0]) and value_allowed(
        5.0, {"type": "integer"}, [5]
    )
    # Where the answer key holds a variable (a string for a list), BFCL compares it as is.
    names = {"type": "array", "items": {"type": "float"}}
    assert value_allowed("data['x']", names, ["data['x']"])
    assert not value_allowed("DATA['X']", names, ["data['x']"])
    nested = {"type": "array", "items": {"type": "string"}}  # one level normalized, as BFCL
    assert value_allowed(["APPLE"], nested, [["Apple"]])
    assert not value_allowed([["APPLE"]], nested, [[["Apple"]]])
    assert is_type(3, "float") and not is_type(3.5, "integer") and not is_type(True, "integer")
    assert is_type([1], "tuple") and is_type((1,), "tuple") and not is_type((1,), "array")
    assert is_type("x", "any") and is_type({"a": 1}, "dict") and is_type(None, None)


SORT = [
    {
        "name": "array_sort",
        "description": "Sort a list of numbers.",
        "parameters": {
            "type": "dict",
            "properties": {
                "list": {"type": "array", "items": {"type": "float"}},
                "order": {"type": "string"},
            },
            "required": ["list"],
        },
    }
]


def test_ints_in_a_list_of_floats_fail_as_in_bfcl() -> None:
    """BFCL's checker (simple_python_87) turns a top-level int into a float, but checks the
    items of a list by exact type: [5, 3] is no list of floats, unless the answer key itself
    writes ints, or the parameter may be left out ("" among the allowed values)."""
    answer = [{"array_sort": {"list": [[5.0, 3.0]], "order": ["ascending", ""]}}]
    ints = check("simple_python", [call("array_sort", list=[5, 3])], SORT, answer)
    assert not ints.valid and "type array" in ints.error
    assert check("simple_python", [call("array_sort", list=[5.0, 3.0])], SORT, answer).valid
    key_ints = [{"array_sort": {"list": [[5, 3]], "order": [""]}}]
    assert check("simple_python", [call("array_sort", list=[5, 3])], SORT, key_ints).valid
    optional = [{"array_sort": {"list": ["", [5.0, 3.0]], "order": [""]}}]
    assert check("simple_python", [call("array_sort", list=[5, 3])], SORT, optional).valid
    bools = [{"f": {"xs": [[1, 0]]}}]
    doc = [{"name": "f", "parameters": {"properties": {"xs": {"type": "array",
            "items": {"type": "integer"}}}, "required": []}}]  # fmt: skip
    assert not check("simple_python", [call("f", xs=[True, False])], doc, bools).valid
    area = [{"calculate_triangle_area": {"base": [10], "height": [5.0]}}]
    height = check("simple_python", [call("calculate_triangle_area", base=10, height=5)],
                   TRIANGLE, area)  # fmt: skip
    assert height.valid  # a top-level int for a float passes
