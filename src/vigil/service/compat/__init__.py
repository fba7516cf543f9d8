"""The originals' own routes, each in the shape its real clients send and read.

The rest of the service knows no task by name; these blueprints are where a public project's API is
reproduced: Alectio's ``/train /test /infer /one_loop /end_exp /jobs`` (:mod:`.alectio`), ML-PT's root
``POST /predict`` (:mod:`.mlpt`) and the web-sessions course API's ``POST /predict/web-sessions`` (:mod:`.web_sessions`).
Each answers through the same task interface and middleware as ``/predict/<task>``.
"""
