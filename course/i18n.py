"""Russian and English text for everything the course library says to a student.

The language is chosen once per notebook with :func:`set_language` (the first
code cell of every lesson does it); ``COURSE_LANG`` sets the default.
"""

import os

LANGUAGES = ("en", "ru")

MESSAGES: dict[str, dict[str, str]] = {
    # outcome lines
    "ok": {"en": "✔ {name}: correct", "ru": "✔ {name}: верно"},
    "fail_header": {"en": "✘ {name}: {reason}", "ru": "✘ {name}: {reason}"},
    "hint": {"en": "Hint: {hint}", "ru": "Подсказка: {hint}"},
    # what the value is
    "not_tensor": {
        "en": "expected a torch.Tensor, got {got}",
        "ru": "ожидался torch.Tensor, получено {got}",
    },
    "not_tensor_hint": {
        "en": "build it with torch.tensor(...) or compute it with torch operations",
        "ru": "создайте его через torch.tensor(...) или вычислите операциями torch",
    },
    "tensor_subclass": {
        "en": "expected a plain torch.Tensor, got the subclass {got}",
        "ru": "ожидался обычный torch.Tensor, получен подкласс {got}",
    },
    "not_number": {
        "en": "expected a number (int, float or a one-element tensor), got {got}",
        "ru": "ожидалось число (int, float или тензор из одного элемента), получено {got}",
    },
    "not_one_element": {
        "en": "expected a single number, got a tensor with {numel} elements",
        "ru": "ожидалось одно число, получен тензор из {numel} элементов",
    },
    "wrong_type": {
        "en": "expected a value of type {expected}, got {got}",
        "ru": "ожидалось значение типа {expected}, получено {got}",
    },
    "wrong_value": {
        "en": "expected {expected}, got {got}",
        "ru": "ожидалось {expected}, получено {got}",
    },
    "wrong_value_hidden": {
        "en": "the value does not match the reference",
        "ru": "значение не совпадает с эталоном",
    },
    # tensor properties
    "shape": {
        "en": "shape is {got}, expected {expected}",
        "ru": "форма {got}, ожидалась {expected}",
    },
    "dtype": {
        "en": "dtype is {got}, expected {expected}",
        "ru": "тип данных {got}, ожидался {expected}",
    },
    "device": {
        "en": "the tensor is on {got}, expected on {expected}",
        "ru": "тензор находится на {got}, ожидалось на {expected}",
    },
    "requires_grad_true": {
        "en": "requires_grad is False, expected True",
        "ru": "requires_grad равен False, ожидался True",
    },
    "requires_grad_false": {
        "en": "requires_grad is True, expected False",
        "ru": "requires_grad равен True, ожидался False",
    },
    "leaf_true": {
        "en": "the tensor is not a leaf (it has grad_fn={grad_fn}), expected a leaf tensor",
        "ru": "тензор не листовой (grad_fn={grad_fn}), ожидался листовой тензор",
    },
    "leaf_false": {
        "en": "the tensor is a leaf, expected the result of an operation (with a grad_fn)",
        "ru": "тензор листовой, ожидался результат операции (с grad_fn)",
    },
    "grad_missing": {
        "en": ".grad is None, expected a gradient (did backward() run?)",
        "ru": ".grad равен None, ожидался градиент (был ли вызван backward()?)",
    },
    "grad_present": {
        "en": ".grad is set, expected None",
        "ru": ".grad заполнен, ожидался None",
    },
    # values
    "nan": {
        "en": "contains NaN at index {index}, expected {expected}",
        "ru": "содержит NaN в позиции {index}, ожидалось {expected}",
    },
    "nan_hidden": {
        "en": "contains NaN at index {index}",
        "ru": "содержит NaN в позиции {index}",
    },
    "values": {
        "en": (
            "{count} of {total} values differ; first at index {index}: got {got}, "
            "expected {expected}; max abs error {abs_err:.3g}{relative} "
            "(rtol={rtol:g}, atol={atol:g})"
        ),
        "ru": (
            "различаются {count} из {total} значений; первое в позиции {index}: получено "
            "{got}, ожидалось {expected}; макс. абс. ошибка {abs_err:.3g}{relative} "
            "(rtol={rtol:g}, atol={atol:g})"
        ),
    },
    "relative": {"en": ", max rel error {rel_err:.3g}", "ru": ", макс. отн. ошибка {rel_err:.3g}"},
    "changed_input": {
        "en": "your function changed its input {input}: {count} of {total} values are not as passed in",
        "ru": "ваша функция изменила свой вход {input}: {count} из {total} значений не такие, как на входе",
    },
    "changed_input_hint": {
        "en": "work on a copy (x.clone()) or use out-of-place operations (x * 2, not x.mul_(2))",
        "ru": "работайте с копией (x.clone()) или операциями не на месте (x * 2, а не x.mul_(2))",
    },
    "grad_none_hint": {
        "en": (
            ".grad is None: on a leaf tensor, call backward() first; on a tensor computed from others "
            "(not a leaf), call retain_grad() on it before backward()"
        ),
        "ru": (
            ".grad равен None: у листового тензора сначала вызовите backward(); у тензора, вычисленного "
            "из других (не листа), вызовите retain_grad() до backward()"
        ),
    },
    "another_type": {"en": "another type", "ru": "другого типа"},
    "another_node": {"en": "another node", "ru": "другой узел"},
    "wrong_class": {
        "en": "expected a value of type {expected}, got one of type {got}",
        "ru": "ожидалось значение типа {expected}, получено значение типа {got}",
    },
    "values_hidden": {
        "en": "{count} of {total} values do not match the hidden reference",
        "ru": "{count} из {total} значений не совпадают со скрытым эталоном",
    },
    "scalar": {
        "en": "got {got}, expected {expected} (abs error {abs_err:.3g}, rtol={rtol:g}, atol={atol:g})",
        "ru": (
            "получено {got}, ожидалось {expected} (абс. ошибка {abs_err:.3g}, rtol={rtol:g}, atol={atol:g})"
        ),
    },
    "scalar_hidden": {
        "en": "got {got}, which does not match the hidden reference",
        "ru": "получено {got}, это не совпадает со скрытым эталоном",
    },
    # autograd graph
    "no_grad_fn": {
        "en": "has no grad_fn (it is a leaf or was computed without autograd)",
        "ru": "не имеет grad_fn (это лист или он вычислен без autograd)",
    },
    "chain": {
        "en": "step {step} of the grad_fn chain is {got}, expected {expected}",
        "ru": "шаг {step} цепочки grad_fn: {got}, ожидался {expected}",
    },
    "chain_short": {
        "en": "the grad_fn chain ends after {steps} steps, expected {expected}",
        "ru": "цепочка grad_fn обрывается после {steps} шагов, ожидалось {expected}",
    },
    "chain_long": {
        "en": "the grad_fn chain goes on past {expected} (next: {got})",
        "ru": "цепочка grad_fn продолжается после {expected} (далее: {got})",
    },
    "condition": {
        "en": "the condition is False",
        "ru": "условие не выполнено",
    },
    "not_bool": {
        "en": "expected True or False, got {got}",
        "ru": "ожидалось True или False, получено {got}",
    },
    # device selection
    "device_env": {
        "en": "COURSE_DEVICE={value!r} is not understood: use 'cpu' or 'cuda'",
        "ru": "COURSE_DEVICE={value!r} не распознан: используйте 'cpu' или 'cuda'",
    },
    "cuda_absent": {
        "en": (
            "COURSE_DEVICE=cuda, but PyTorch sees no CUDA device. Install a CUDA build "
            "of torch (see README, 'Running on a GPU') or unset COURSE_DEVICE."
        ),
        "ru": (
            "COURSE_DEVICE=cuda, но PyTorch не видит CUDA-устройство. Установите сборку "
            "torch с CUDA (см. README, «Запуск на GPU») или уберите COURSE_DEVICE."
        ),
    },
    "unknown_language": {
        "en": "unknown language {value!r}: use one of {choices}",
        "ru": "неизвестный язык {value!r}: используйте один из {choices}",
    },
}

_current = os.environ.get("COURSE_LANG", "en") if os.environ.get("COURSE_LANG") in LANGUAGES else "en"


def set_language(lang: str) -> None:
    """Choose the language of every message the course prints ('en' or 'ru')."""
    global _current
    if lang not in LANGUAGES:
        raise ValueError(message("unknown_language", value=lang, choices=", ".join(LANGUAGES)))
    _current = lang


def get_language() -> str:
    return _current


def message(key: str, lang: str | None = None, **fields) -> str:
    """The text of message ``key`` in ``lang`` (default: the current language)."""
    return MESSAGES[key][lang or _current].format(**fields)
