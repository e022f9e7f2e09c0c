"""Every text the course and its grader show, in English and Russian: one catalogue.

The notebook's language is chosen once with :func:`set_language` (the first
code cell of every lesson does it); ``COURSE_LANG`` sets the default. The
grader names the language of each message it writes. Imports nothing heavy:
feedback pages and reports are written from it without torch.
"""

import os
from dataclasses import dataclass, field

LANGUAGES = ("en", "ru")

MESSAGES: dict[str, dict[str, str]] = {
    # --- the checks (course.checks) ---
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
    # --- the grader's verdicts on test cells (autograder.grading.verify), reasons of fail_header ---
    "verify.not_reached": {
        "en": "this check was not reached (the test stopped before it)",
        "ru": "до этой проверки выполнение не дошло (тест остановился раньше)",
    },
    "verify.mismatch_at": {
        "en": "the value does not match the instructor's solution",
        "ru": "значение не совпадает с решением преподавателя",
    },
    "verify.mismatch": {
        "en": "the values your code gave do not match the instructor's solution on the grader's inputs",
        "ru": (
            "значения, которые дал ваш код, не совпадают с решением преподавателя на входных данных проверки"
        ),
    },
    # --- feedback pages and scores (autograder) ---
    "passed": {"en": "passed", "ru": "пройдено"},
    "failed": {"en": "failed", "ru": "не пройдено"},
    "manual": {"en": "to be graded by the instructor", "ru": "ждёт проверки преподавателем"},
    "graded_by_person": {"en": "graded by the instructor", "ru": "проверено преподавателем"},
    "blank": {"en": "no answer", "ru": "нет ответа"},
    "comment": {"en": "Instructor's comment", "ru": "Комментарий преподавателя"},
    # What stands in a written answer's place when the student deleted its cell (Markdown).
    "missing_written": {
        "en": "*(answer cell missing from the submission)*",
        "ru": "*(в работе нет ячейки с ответом)*",
    },
    "not_written": {
        "en": "the answer is not written yet (NotImplementedError)",
        "ru": "ответ ещё не написан (NotImplementedError)",
    },
    "error_hidden": {
        "en": "the code raised {ename} during the test",
        "ru": "код выбросил {ename} во время теста",
    },
    "stderr": {
        "en": "the cell printed a warning or an error (stderr), which nbgrader scores as a failure",
        "ru": "ячейка вывела предупреждение или ошибку (stderr), это засчитывается как неудача",
    },
    "missing": {
        "en": "the answer cell {grade_id} is missing from the submission",
        "ru": "в работе нет ячейки ответа {grade_id}",
    },
    "stopped": {"en": "not run: {reason}", "ru": "не выполнено: {reason}"},
    "an_exception": {"en": "an exception", "ru": "исключение"},
    "title": {"en": "Feedback", "ru": "Отзыв"},
    "exercise": {"en": "Exercise", "ru": "Упражнение"},
    "points": {"en": "Points", "ru": "Баллы"},
    "result": {"en": "Result", "ru": "Результат"},
    "details": {"en": "Details", "ru": "Подробности"},
    "total": {"en": "Total", "ru": "Итого"},
    "student": {"en": "Student", "ru": "Студент"},
    "assignment": {"en": "Assignment", "ru": "Задание"},
    "submitted_at": {"en": "Submitted", "ru": "Сдано"},
    "late": {"en": "late by {duration}", "ru": "опоздание {duration}"},
    "not_graded": {
        "en": "This submission could not be graded: {reason}",
        "ru": "Работу не удалось проверить: {reason}",
    },
    "notices": {"en": "Notes from the grader", "ru": "Замечания проверяющей системы"},
    "hidden_note": {
        "en": "Tests marked hidden ran on inputs you did not see; only their verdict is shown.",
        "ru": "Скрытые тесты запускались на данных, которых вы не видели; показан только их итог.",
    },
    # --- why a run stopped: "stop." + a code of autograder.grading.protocol.STOP_REASONS ---
    "stop.cell_time": {"en": "a cell ran past the time limit", "ru": "ячейка превысила лимит времени"},
    "stop.notebook_time": {
        "en": "the notebook ran past the time limit",
        "ru": "тетрадка превысила лимит времени",
    },
    "stop.output_limit": {
        "en": "the notebook printed too much",
        "ru": "тетрадка вывела слишком много текста",
    },
    "stop.memory": {"en": "the notebook ran out of memory", "ru": "тетрадке не хватило памяти"},
    "stop.exited": {"en": "the notebook ended its own process", "ru": "тетрадка завершила свой процесс"},
    "stop.killed": {
        "en": "the process was killed (out of memory, a crash, or a signal)",
        "ru": "процесс был убит (нехватка памяти, сбой или сигнал)",
    },
    "stop.crashed": {"en": "the grader's runner failed", "ru": "сбой исполнителя проверки"},
    "stop.ended": {
        "en": "the process ended before the notebook finished",
        "ru": "процесс завершился раньше, чем тетрадка",
    },
    "stop.protocol": {
        "en": "the notebook interfered with the grader's channel",
        "ru": "тетрадка вмешалась в канал связи с проверяющей системой",
    },
    "stop.sandbox": {"en": "the sandbox stopped", "ru": "песочница остановилась"},
    "stop.unclean": {
        "en": "the sandbox could not be cleaned after the notebook",
        "ru": "песочницу не удалось очистить после тетрадки",
    },
    # --- what common errors mean (KNOWN_ERRORS) ---
    "error.no_grad": {
        "en": "backward() reached a tensor that does not require grad: was requires_grad=True set?",
        "ru": "backward() дошёл до тензора, который не требует градиента: задан ли requires_grad=True?",
    },
    "error.second_backward": {
        "en": "backward() went through the same graph twice: rebuild the graph or pass retain_graph=True",
        "ru": "backward() прошёл по графу дважды: постройте граф заново или задайте retain_graph=True",
    },
    "error.leaf_in_place": {
        "en": "a leaf that requires grad was changed in place: update it under torch.no_grad()",
        "ru": "лист, требующий градиента, изменён на месте: обновляйте его внутри torch.no_grad()",
    },
    "error.not_scalar": {
        "en": "backward() on a tensor with several elements needs a gradient argument (or .sum() first)",
        "ru": "backward() для тензора из нескольких элементов требует gradient (или сначала .sum())",
    },
    "error.numpy_grad": {
        "en": ".numpy() on a tensor that requires grad: call .detach() first",
        "ru": ".numpy() у тензора, требующего градиента: сначала вызовите .detach()",
    },
    "error.devices": {
        "en": "tensors on different devices were combined: move them to one device with .to(device)",
        "ru": "объединены тензоры на разных устройствах: переместите их на одно через .to(device)",
    },
    "error.sizes": {
        "en": "the shapes of two tensors do not fit together",
        "ru": "формы двух тензоров не согласуются",
    },
    "error.matmul": {
        "en": "the shapes of two matrices do not fit for a product",
        "ru": "формы двух матриц не подходят для произведения",
    },
    # --- plots (course.plotting) and graphs (course.graph) ---
    "plot.step": {"en": "step", "ru": "шаг"},
    "plot.loss": {"en": "loss f(x)", "ru": "значение функции f(x)"},
    "plot.loss_title": {"en": "Loss by step", "ru": "Значение функции по шагам"},
    "plot.contour_title": {
        "en": "Trajectories on the level lines of f",
        "ru": "Траектории на линиях уровня f",
    },
    "plot.start": {"en": "start", "ru": "старт"},
    "plot.minimum": {"en": "minimum", "ru": "минимум"},
    "graph.no_grad_fn": {"en": "(no grad_fn)", "ru": "(нет grad_fn)"},
}

# Common errors, recognised by a fragment of their message: (fragment, key of the explanation).
# The student sees only the catalogue's words, never the error's own text.
KNOWN_ERRORS: tuple[tuple[str, str], ...] = (
    ("does not require grad and does not have a grad_fn", "error.no_grad"),
    ("backward through the graph a second time", "error.second_backward"),
    ("leaf Variable that requires grad is being used in an in-place operation", "error.leaf_in_place"),
    ("grad can be implicitly created only for scalar outputs", "error.not_scalar"),
    ("Call tensor.detach().numpy() instead", "error.numpy_grad"),
    ("Expected all tensors to be on the same device", "error.devices"),
    ("must match the size of tensor", "error.sizes"),
    ("cannot be multiplied", "error.matmul"),
)


@dataclass(frozen=True)
class Text:
    """A catalogue message used as a field of another: rendered in the same language."""

    key: str
    fields: dict = field(default_factory=dict)


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
    """The text of ``key`` in ``lang`` (default: the notebook's language; English for a language
    the catalogue lacks), with ``fields`` filled in; a :class:`Text` field is rendered in ``lang`` too."""
    lang = lang or _current
    lang = lang if lang in LANGUAGES else "en"
    shown = {
        name: message(value.key, lang, **value.fields) if isinstance(value, Text) else value
        for name, value in fields.items()
    }
    return MESSAGES[key][lang].format(**shown)


def known_error(evalue: str, lang: str) -> str | None:
    """The catalogue's explanation of an error message it recognises, else None."""
    for fragment, key in KNOWN_ERRORS:
        if fragment in evalue:
            return message(key, lang)
    return None
