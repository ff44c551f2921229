"""The MT5 client's pure parts: the published hash vectors, retcodes to typed errors, records to
dataclasses and back. No server needed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.trading import platform as p
from app.trading.mt5 import protocol, records
from app.trading.mt5.client import WebApiSession
from app.trading.mt5.platform import MT5Platform


def test_the_password_hash_matches_the_published_vector():
    assert protocol.password_hash("Password1").hex() == "904ba8ecb16273d2f0ae9c3b8a023752"


def test_the_answers_to_both_challenges_match_the_published_vectors():
    ph = protocol.password_hash("Password1")
    assert protocol.rand_answer(ph, "73007dc7184747ce0f7c98516ef1c851") == "77fe51827f7fa69dd80fbec9aa33f1bb"
    assert protocol.rand_answer(ph, "4db98fec17aab4dc5a240bdc659e8395") == "1732021b1b332f51660b2b315eed3a35"


def test_the_session_keeps_the_password_hash_and_not_the_password():
    session = WebApiSession("127.0.0.1:1", 1000, "Password1", tls=False)
    assert session._ph.hex() == "904ba8ecb16273d2f0ae9c3b8a023752"
    assert "Password1" not in repr(vars(session))


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (3, p.InvalidRequest),
        (8, p.PermissionDenied),
        (9, p.OutcomeUnknown),
        (10, p.Unreachable),
        (12, p.Busy),
        (13, p.NotFound),
        (1002, p.AccountDisabled),
        (1008, p.AuthFailed),
        (3004, p.Duplicate),
        (3006, p.WeakPassword),
        (4005, p.InvalidRequest),
        (10019, p.NotEnoughMoney),
        (2, p.PlatformError),
    ],
)
def test_each_retcode_becomes_its_typed_error_with_a_message_for_people(code, error):
    exc = protocol.error_for(code, "trade/balance", "whatever")
    assert type(exc) is error
    assert exc.code == code and exc.command == "trade/balance"
    assert exc.message.endswith(".") and len(exc.message) > 20


def test_the_retcode_is_the_leading_integer_of_the_string():
    assert protocol.parse_retcode("10019 Not enough money") == 10019
    assert protocol.parse_retcode("0 Done") == 0
    with pytest.raises(ValueError):
        protocol.parse_retcode(0)
    with pytest.raises(ValueError):
        protocol.parse_retcode("Done")


DEAL = {
    "Deal": "136623",
    "ExternalID": "",
    "Login": "764636",
    "Dealer": "0",
    "Order": "88",
    "Action": "1",
    "Entry": "1",
    "Reason": "3",
    "Digits": "5",
    "DigitsCurrency": "2",
    "ContractSize": "100000.00",
    "Time": "1572518788",
    "TimeMsc": "1572518788123",
    "Symbol": "EURUSD",
    "Price": "1.10523",
    "Volume": "10000",
    "VolumeExt": "100000000",
    "Profit": "-12.30",
    "Storage": "-0.75",
    "Commission": "-3.50",
    "Fee": "0.00",
    "PositionID": "77",
    "Comment": "[sl 1.10523]",
}


def test_a_deal_record_becomes_a_deal_with_exact_decimals():
    deal = records.deal_from(DEAL)
    assert deal == p.Deal(
        deal=136623,
        login=764636,
        action=1,
        entry=1,
        reason=3,
        time=1572518788,
        time_msc=1572518788123,
        symbol="EURUSD",
        price=Decimal("1.10523"),
        volume=10000,
        profit=Decimal("-12.30"),
        storage=Decimal("-0.75"),
        commission=Decimal("-3.50"),
        fee=Decimal("0.00"),
        position_id=77,
        order=88,
        comment="[sl 1.10523]",
        contract_size=Decimal("100000.00"),
        digits=5,
        dealer=0,
    )


def test_a_deal_row_has_the_documented_columns_as_the_server_sent_them():
    row = records.deal_row(DEAL)
    assert len(row) == len(p.DEAL_ROW_COLUMNS)
    as_dict = dict(zip(p.DEAL_ROW_COLUMNS, row, strict=True))
    assert as_dict["deal"] == "136623" and as_dict["profit"] == "-12.30" and as_dict["storage"] == "-0.75"
    assert as_dict["order"] == "88" and as_dict["comment"] == "[sl 1.10523]"
    assert row == tuple(str(v) for v in _deal_values(records.deal_from(DEAL)))


def _deal_values(deal: p.Deal):
    return [getattr(deal, c) for c in p.DEAL_ROW_COLUMNS]


def test_a_balance_deal_with_only_the_essential_fields_gets_the_protocols_zeros():
    deal = records.deal_from({"Deal": "5", "Login": "7", "Action": "2", "Time": "10", "Profit": "100.00"})
    assert (deal.action, deal.profit, deal.symbol, deal.price, deal.volume) == (
        2,
        Decimal("100.00"),
        "",
        0,
        0,
    )


def test_a_lenient_server_sending_json_numbers_never_puts_a_float_into_a_decimal():
    deal = records.deal_from({"Deal": 5, "Login": 7, "Action": 0, "Time": 10, "Price": 1.1, "Profit": 0.1})
    assert deal.price == Decimal("1.1") and deal.profit == Decimal("0.1")
    assert records.deal_row({"Deal": 5, "Login": 7, "Action": 0, "Time": 10, "Price": 1.1})[8] == "1.1"


def test_a_user_record_becomes_a_platform_user():
    user = records.user_from(
        {
            "Login": "954402",
            "Group": "real\\standard-usd",
            "Name": "Ada Lovelace",
            "Email": "ada@example.com",
            "Leverage": "500",
            "Rights": "355",
            "Balance": "1000.50",
            "Credit": "0.00",
            "Registration": "1572518788",
            "ID": "42",
            "Comment": "",
        }
    )
    assert (user.login, user.group, user.leverage, user.rights) == (954402, "real\\standard-usd", 500, 0x163)
    assert (user.balance, user.client_ref, user.registration) == (Decimal("1000.50"), "42", 1572518788)


def test_an_account_record_becomes_an_account_state():
    state = records.account_from(
        {
            "Login": "7",
            "CurrencyDigits": "2",
            "Balance": "100.00",
            "Credit": "5.00",
            "Margin": "20.00",
            "MarginFree": "84.50",
            "MarginLevel": "522.50",
            "MarginLeverage": "500",
            "Profit": "-0.50",
            "Equity": "104.50",
        }
    )
    assert (state.login, state.equity, state.margin_level, state.leverage) == (
        7,
        Decimal("104.50"),
        Decimal("522.50"),
        500,
    )
    assert state.storage == 0


def test_a_position_record_becomes_a_position():
    pos = records.position_from(
        {
            "Position": "77",
            "Login": "7",
            "Symbol": "XAUUSD",
            "Action": "1",
            "Digits": "2",
            "ContractSize": "100",
            "TimeCreate": "100",
            "TimeUpdate": "200",
            "PriceOpen": "2300.10",
            "PriceCurrent": "2301.00",
            "PriceSL": "0",
            "PriceTP": "2250.00",
            "Volume": "1000",
            "Profit": "-9.00",
            "Storage": "0.00",
        }
    )
    assert (pos.position, pos.action, pos.volume, pos.digits) == (77, 1, 1000, 2)
    assert (pos.price_open, pos.profit, pos.price_tp) == (
        Decimal("2300.10"),
        Decimal("-9.00"),
        Decimal("2250.00"),
    )


def test_user_add_puts_the_passwords_in_the_body_and_leaves_them_out_of_the_url():
    params, body = records.user_add_request(
        p.NewAccount(
            group="demo\\forex-usd",
            name="Ada",
            leverage=100,
            password_main="Main#Pass1",
            password_investor="Inv#Pass1",
            email="ada@example.com",
            client_ref="42",
        )
    )
    assert body == {"PassMain": "Main#Pass1", "PassInvestor": "Inv#Pass1"}
    assert params == {
        "login": 0,
        "group": "demo\\forex-usd",
        "name": "Ada",
        "leverage": 100,
        "email": "ada@example.com",
        "id": "42",
    }
    assert "Main#Pass1" not in str(params)


def test_user_update_sends_only_the_changed_fields_as_mt5_spells_them():
    assert records.user_update_body(p.AccountUpdate(leverage=200, group="real\\pro-eur", rights=0x167)) == {
        "Group": "real\\pro-eur",
        "Leverage": "200",
        "Rights": "359",
    }
    assert records.user_update_body(p.AccountUpdate()) == {}


def test_the_server_time_is_the_leading_unix_seconds():
    assert records.server_time_from({"Time": "1572518788 2019.10.31 10:46:28"}) == 1572518788


def test_a_group_record_gives_currency_leverage_and_commission():
    group = records.group_from(
        {
            "Group": "real\\standard-usd",
            "Currency": "USD",
            "CurrencyDigits": "2",
            "Leverage": "500",
            "Commission": "3.5",
        }
    )
    assert (group.name, group.currency, group.leverage, group.commission_per_lot) == (
        "real\\standard-usd",
        "USD",
        500,
        Decimal("3.5"),
    )


def test_mt5_platform_implements_the_platform_interface():
    platform = MT5Platform("127.0.0.1:1", 1000, "x", tls=False)
    assert isinstance(platform, p.TradingPlatform)
    assert isinstance(platform, p.DealRowSource)


async def test_a_balance_operation_with_a_comment_over_32_characters_is_refused_before_sending():
    platform = MT5Platform("127.0.0.1:1", 1000, "x", tls=False)
    with pytest.raises(p.InvalidRequest):
        await platform.balance_operation(7, p.BalanceType.BALANCE, Decimal("10"), "x" * 33)
    with pytest.raises(p.InvalidRequest):
        await platform.balance_operation(7, p.BalanceType.BALANCE, Decimal("0"), "fx:1")
    await platform.close()
