"""Laws: analytic Jacobians against finite differences, and closed forms against numerical references."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from augury.scaling.laws import LAWS, Chinchilla, Sigmoid, get_law

INPUTS = {"flops": np.geomspace(1e17, 1e22, 7), "params": np.geomspace(1e7, 1e10, 7),
          "tokens": np.geomspace(1e9, 1e12, 7)}
THETAS = {"gpt4-loss": [5.0, -0.1, 0.5], "power-loss": [5.0, -0.1], "chinchilla": [6.0, 6.0, 0.5, 0.34, 0.28],
          "kaplan-n": [30.0, 0.07, 0.3],
          "kaplan-d": [25.0, 0.09, 0.3], "capability": [4.0, 0.08], "sigmoid": [0.8, 19.5, 1.2, 0.2]}


@pytest.mark.parametrize("name", sorted(LAWS))
def test_jacobian_matches_finite_differences(name):
    law = LAWS[name]
    theta = np.array(THETAS[name], float)[None, :]
    _, jac = law.log_predict_and_jac(theta, INPUTS)
    eps = 1e-6
    for p in range(theta.shape[1]):
        up, down = theta.copy(), theta.copy()
        up[0, p] += eps
        down[0, p] -= eps
        fd = (law.log_predict(up, INPUTS) - law.log_predict(down, INPUTS)) / (2 * eps)
        np.testing.assert_allclose(jac[0, :, p], fd[0], rtol=1e-5, atol=1e-7)


def test_formulas_match_their_published_form():
    c = INPUTS["flops"]
    np.testing.assert_allclose(LAWS["gpt4-loss"].predict(np.array([np.log(40.0), -0.08, np.log(1.7)]), INPUTS)[0],
                               40.0 * c ** -0.08 + 1.7)
    np.testing.assert_allclose(LAWS["power-loss"].predict(np.array([np.log(40.0), -0.08]), INPUTS)[0],
                               40.0 * c ** -0.08)
    n, d = INPUTS["params"], INPUTS["tokens"]
    theta = np.array([np.log(406.4), np.log(410.7), np.log(1.69), 0.34, 0.28])
    np.testing.assert_allclose(LAWS["chinchilla"].predict(theta, INPUTS)[0],
                               1.69 + 406.4 / n ** 0.34 + 410.7 / d ** 0.28)
    np.testing.assert_allclose(LAWS["capability"].predict(np.array([np.log(3.0), 0.05]), INPUTS)[0], 3.0 * c ** -0.05)
    sig = Sigmoid(column="bpb")
    x = np.linspace(0.5, 1.5, 5)
    a_frac, x0, k, b = 0.8, 1.0, -6.0, 0.25
    expect = b + a_frac * (1 - b) / (1 + np.exp(-k * (x - x0)))
    np.testing.assert_allclose(sig.predict(np.array([a_frac, x0, k, b]), {"bpb": x})[0], expect)


def test_compute_optimal_matches_numerical_minimum():
    law = Chinchilla()
    theta = np.array([np.log(406.4), np.log(410.7), np.log(1.69), 0.34, 0.28])
    flops = 1e23
    n_opt, d_opt = law.compute_optimal(theta, flops)

    def loss_at(log_n):
        n = np.exp(log_n)
        return law.predict(theta, {"params": np.array([n]), "tokens": np.array([flops / (6 * n)])})[0, 0]

    ref = np.exp(minimize_scalar(loss_at, bounds=(np.log(1e6), np.log(1e13)), method="bounded",
                                 options={"xatol": 1e-10}).x)
    assert n_opt[0] == pytest.approx(ref, rel=1e-4)
    assert 6 * n_opt[0] * d_opt[0] == pytest.approx(flops)


def test_unknown_law_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown law 'chinchila'"):
        get_law("chinchila")


def test_power_loss_fit_recovers_a_pure_power_law_and_matches_least_squares_in_log_space():
    from augury.scaling import fit_law

    c = np.geomspace(1e10, 1e12, 6)
    noise = np.array([0.0004, -0.0003, 0.0002, -0.0005, 0.0001, 0.0003])  # below the Huber delta (1e-3)
    loss = 60.0 * c ** -0.09 * np.exp(noise)
    res = fit_law("power-loss", {"flops": c, "loss": loss}, bootstrap=0)
    # residuals below the Huber delta make the loss quadratic: the fit is ordinary least squares on log L vs log C
    b, log_a = np.polyfit(np.log(c), np.log(loss), 1)
    assert res.converged
    np.testing.assert_allclose([res.params["b"], np.log(res.params["a"])], [b, log_a], rtol=1e-4)


def test_an_input_column_is_chosen_only_for_the_one_input_laws():
    from augury.scaling import TableError

    assert get_law("sigmoid", "task_bpb").inputs == ("task_bpb",)
    assert get_law("kaplan-n", "tokens").inputs == ("tokens",)
    assert get_law("gpt4-loss", "flops") is LAWS["gpt4-loss"]  # its own input: nothing is dropped
    for law in ("gpt4-loss", "chinchilla", "capability"):
        with pytest.raises(TableError, match=f"law '{law}' takes .* would be ignored"):
            get_law(law, "params" if law != "chinchilla" else "flops")
