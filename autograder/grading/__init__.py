"""Grading, as one pipeline: a submission in, scores and a result out.

Each module is one stage, in the order a notebook goes through them:

- ``submission``: read the student's notebook and assemble the one that is run
  (the instructor's test cells, the student's answers);
- ``references``: what each check compares with, learnt from the instructor's
  solution in a sandbox of its own;
- ``testcells``: test cells rewritten so that they only report values;
- ``protocol``: the messages between the grader, a sandbox and the notebook's process;
- ``sandbox``: bubblewrap sandboxes, one fresh process per notebook;
- ``run``: one assembled notebook through a sandbox, outputs put back;
- ``cluster``: the same runs as Dask tasks (``--cluster``);
- ``verify``: the reported values against the references, in the grader's process;
- ``score``: points per cell, with a reason for every lost point;
- ``grade``: every submission of an assignment, into results and the gradebook;
- ``results``: a submission's result and its ``result.json`` (what feedback, export and the
  report read, without the sandbox or torch); ``gradebook``: the scores into nbgrader's gradebook;
- ``server``: sandboxes kept warm between commands; ``lock``: one grader per course.

Importing this package imports none of them.
"""
